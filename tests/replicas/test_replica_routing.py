"""A bendi router in front of real bendi replicas: spread, conversation affinity, clients, API keys,
and kill -9 of a replica under load (last: it takes a replica away)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from cluster import (
    MODEL,
    chat,
    replica_rows,
    start_replica,
    start_router,
    stream_chat,
    upstream_args,
    wait_for,
)

from client_leaves import post_and_leave
from server_process import ServerProcess

BENDI = str(Path(sys.executable).parent / "bendi")
CLIENTS = 6


@dataclass
class Cluster:
    router: ServerProcess
    replicas: list[ServerProcess]  # three replicas of MODEL; the first in team mode, its key in the file
    key: str
    admin_key: str  # reads the team replica's /metrics

    @property
    def team(self) -> ServerProcess:
        """Also serves "small" (MODEL under another name) with its key and "nokey" without one."""
        return self.replicas[0]


def _team_keys(home: Path) -> tuple[str, str]:
    """An inference key and an admin key of the team replica's first administrator."""
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, BENDI_HOME=str(home))
    subprocess.run([BENDI, "admin", "init", "--username", "boss", "--password-stdin"], input="replica-pass-1\n",
                   text=True, env=env, check=True, capture_output=True)  # fmt: skip

    def create(scope: str) -> str:
        created = subprocess.run([BENDI, "admin", "key", "create", "--user", "boss", "--scope", scope, "--json"],
                                 text=True, env=env, check=True, capture_output=True)  # fmt: skip
        return str(json.loads(created.stdout)["key"])

    return create("inference"), create("admin")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    key, admin_key = _team_keys(root / "replica0")
    servers: list[ServerProcess] = []
    try:
        with ThreadPoolExecutor(3) as pool:  # they start together: each loads the model
            servers = list(pool.map(start_replica, [root / "replica0", root / "replica1", root / "replica2"]))
        replicas, team = list(servers), servers[0]
        # "small" has no local model of that name: the router reads its template from the replica's
        # /api/show and its id from /v1/models (model_id picks one of several); the key goes in the file.
        upstreams = root / "upstreams.toml"
        upstreams.write_text(
            f'[[replica]]\nmodel = "{MODEL}"\nurl = "{team.base_url}"\napi_key = "{key}"\n'
            f'[[replica]]\nmodel = "small"\nurl = "{team.base_url}"\nmodel_id = "{MODEL}"\napi_key = "{key}"\n'
            f'[[replica]]\nmodel = "nokey"\nurl = "{team.base_url}"\nmodel_id = "{MODEL}"\n'
        )
        router = start_router(
            root / "router", (*upstream_args(MODEL, replicas[1:]), "--upstreams-file", str(upstreams))
        )
        servers.append(router)
        yield Cluster(router, replicas, key, admin_key)
    finally:
        for server in servers:
            server.stop()


def _requests(router: ServerProcess) -> dict[str, float]:
    return replica_rows(router, "bendi_replica_requests_total")


def test_sequential_conversations_spread_evenly(cluster: Cluster) -> None:
    router, replicas = cluster.router, cluster.replicas
    before = _requests(router) if replica_rows(router, "bendi_replica_healthy") else {}
    for i in range(9):
        reply = chat(router.base_url, f"Say a word about the number {i}.")
        assert reply["choices"][0]["message"]["content"], reply
    after = _requests(router)
    assert set(after) == {r.base_url for r in replicas}
    counts = {url: after[url] - before.get(url, 0) for url in after}
    assert sorted(counts.values()) == [3, 3, 3], counts  # nothing in flight: ties go round in turn


def test_concurrent_load_reaches_every_replica(cluster: Cluster) -> None:
    router = cluster.router
    before = _requests(router)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda i: chat(router.base_url, f"Count to {i} in words.", max_tokens=8), range(12)))
    counts = {url: _requests(router)[url] - before[url] for url in before}
    assert sum(counts.values()) == 12 and min(counts.values()) >= 2, counts


def test_a_conversation_stays_on_its_replica(cluster: Cluster) -> None:
    router = cluster.router
    history: list[dict[str, str]] = []
    served_by, usage = [], []
    for turn in ("Hello, who are you?", "Tell me more.", "And then?"):
        before = _requests(router)
        reply = chat(router.base_url, turn, history=history, max_tokens=8)
        after = _requests(router)
        served_by.append([url for url in after if after[url] > before[url]])
        usage.append(reply["usage"])
        history += [{"role": "user", "content": turn},
                    {"role": "assistant", "content": reply["choices"][0]["message"]["content"]}]  # fmt: skip
    assert all(len(urls) == 1 for urls in served_by) and len({urls[0] for urls in served_by}) == 1, served_by
    # The replica reused the whole previous turn from its cache (another would share the system prompt only).
    for previous, current in zip(usage, usage[1:], strict=False):
        assert current["prompt_tokens_details"]["cached_tokens"] >= previous["prompt_tokens"] - 2, usage


def test_official_openai_client_and_listings(cluster: Cluster) -> None:
    router, replicas = cluster.router, cluster.replicas
    client = openai.OpenAI(base_url=router.base_url + "/v1", api_key="unused", max_retries=0)
    assert {MODEL, "small"} <= {m.id for m in client.models.list()}
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=8, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    # The aliased model on the team-mode replica: its chat template came from the replica's /api/show.
    reply = client.chat.completions.create(
        model="small", messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=8, temperature=0
    )
    direct = openai.OpenAI(base_url=cluster.team.base_url + "/v1", api_key=cluster.key, max_retries=0)
    same = direct.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=8, temperature=0
    )
    assert (
        reply.choices[0].message.content == same.choices[0].message.content
    )  # the same prompt, rendered here
    ps = httpx.get(router.base_url + "/api/ps", timeout=10).json()["models"]
    rows = {m["name"]: m for m in ps}
    assert {r["url"] for r in rows[MODEL]["replicas"]} == {r.base_url for r in replicas}
    assert all(r["healthy"] for r in rows[MODEL]["replicas"])
    tags = {m["name"] for m in httpx.get(router.base_url + "/api/tags", timeout=10).json()["models"]}
    assert "small" in tags


def test_metrics_show_every_replica(cluster: Cluster) -> None:
    router, replicas = cluster.router, cluster.replicas
    chat(router.base_url, "ping")
    for metric in ("bendi_replica_healthy", "bendi_replica_in_flight", "bendi_replica_failures_total"):
        rows = replica_rows(router, metric)
        assert set(rows) == {r.base_url for r in replicas}, (metric, rows)
    assert set(replica_rows(router, "bendi_replica_healthy").values()) == {1.0}


def test_time_to_first_token_counts_only_answers_timed_token_by_token(cluster: Cluster) -> None:
    """A non-streaming client's answer comes from the replica in one piece: its first token's time is
    unknown, so it is counted in the tokens but not in the time-to-first-token histogram (it would
    report the whole answer's time there); a streamed answer is counted in both."""
    router = cluster.router

    def counts() -> tuple[float, float]:
        text = httpx.get(router.base_url + "/metrics", timeout=10).text
        found = {}
        for name in ("bendi_generated_tokens_total", "bendi_time_to_first_token_seconds_count"):
            match = re.search(rf'^{name}{{model="{re.escape(MODEL)}"}} (\S+)$', text, re.M)
            found[name] = float(match.group(1)) if match else 0.0
        return found["bendi_generated_tokens_total"], found["bendi_time_to_first_token_seconds_count"]

    tokens, timed = counts()
    answer = chat(router.base_url, "Name a colour.", max_tokens=6)
    after_whole = counts()
    assert after_whole == (tokens + answer["usage"]["completion_tokens"], timed)
    with httpx.Client() as client:
        text, error = stream_chat(client, router.base_url, "Name a colour.", 6)
    assert error is None and text
    after_stream = counts()
    assert after_stream[0] > after_whole[0] and after_stream[1] == timed + 1


def test_upstream_spec_errors_are_sentences(tmp_path: Path) -> None:
    from bendi.core.errors import UserInputError
    from bendi.engines.remote import parse_upstream, read_upstreams_file

    assert parse_upstream("m=http://10.0.0.5:11435/v1/").url == "http://10.0.0.5:11435"
    assert parse_upstream("m=local").url == "local"
    for bad in ("just-a-model", "m=", "m=ftp://host", "m=10.0.0.5:11435"):
        with pytest.raises(UserInputError, match="upstream"):
            parse_upstream(bad)
    file = tmp_path / "u.toml"
    file.write_text('[[replica]]\nmodel = "m"\nurl = "http://h:1"\napi_kye = "typo"\n')
    with pytest.raises(UserInputError, match="unknown key.*api_kye"):
        read_upstreams_file(file)
    file.write_text('[[replica]]\nmodel = "m"\n')
    with pytest.raises(UserInputError, match="needs model"):
        read_upstreams_file(file)
    file.write_text('model = "m"\n')
    with pytest.raises(UserInputError, match=r"\[\[replica\]\]"):
        read_upstreams_file(file)


def test_api_key_reaches_a_team_mode_replica_and_is_never_logged(cluster: Cluster) -> None:
    team = cluster.team.base_url
    assert httpx.post(team + "/v1/chat/completions", json={"model": MODEL}, timeout=10).status_code == 401
    assert chat(cluster.router.base_url, "Hello there", model="small")["choices"][0]["message"]["content"]
    refused = httpx.post(cluster.router.base_url + "/v1/chat/completions", timeout=30,
                         json={"model": "nokey", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert refused.status_code == 503 and "api_key" in refused.json()["error"]["message"], refused.text
    assert cluster.key not in cluster.router.log_path.read_text(errors="replace")


def test_a_client_waiting_for_the_whole_answer_gets_it_unstreamed_from_the_replica(cluster: Cluster) -> None:
    """A non-streaming client's request goes to the replica without streaming (one reply instead of a
    stream of chunks: fewer writes and wake-ups on both sides) and gives the same greedy answer; a
    whole reply slower than the request's time limit is that request's timeout (504), not a lost
    replica."""
    from bendi.core.errors import RequestTimeoutError
    from bendi.engines.messages import Finished, GenerationRequest, SamplingParams, TextDelta
    from bendi.engines.protocol import EngineInfo
    from bendi.engines.upstream import UpstreamEngine

    prompt = "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n"
    params = SamplingParams(temperature=0.0, max_tokens=12)

    async def answer(stream: bool, timeout_s: float = 60.0) -> list[object]:
        info = EngineInfo(MODEL, "upstream", 1024)
        engine = UpstreamEngine(cluster.replicas[1].base_url, info, lambda m, g: None, timeout_s=timeout_s)  # type: ignore[arg-type,return-value]
        try:
            return [e async for e in engine.generate(GenerationRequest(prompt, params, stream=stream))]
        finally:
            await engine.close()

    streamed, whole = asyncio.run(answer(True)), asyncio.run(answer(False))
    streamed_text = "".join(e.text for e in streamed if isinstance(e, TextDelta))
    whole_deltas = [e for e in whole if isinstance(e, TextDelta)]
    assert len(whole_deltas) == 1 and whole_deltas[0].text == streamed_text and streamed_text
    assert len([e for e in streamed if isinstance(e, TextDelta)]) > 1
    done_streamed, done_whole = streamed[-1], whole[-1]
    assert isinstance(done_streamed, Finished) and isinstance(done_whole, Finished)
    assert done_streamed.first_token_timed and not done_whole.first_token_timed
    assert done_whole.finish_reason == done_streamed.finish_reason
    whole_usage, streamed_usage = done_whole.usage, done_streamed.usage  # the second hits the prompt cache
    assert whole_usage.prompt_tokens == streamed_usage.prompt_tokens
    assert whole_usage.completion_tokens == streamed_usage.completion_tokens
    slow = SamplingParams(temperature=0.0, max_tokens=200, ignore_eos=True)

    async def too_slow() -> None:
        info = EngineInfo(MODEL, "upstream", 1024)
        engine = UpstreamEngine(cluster.replicas[1].base_url, info, lambda m, g: None, timeout_s=0.05)  # type: ignore[arg-type,return-value]
        try:
            async for _ in engine.generate(GenerationRequest(prompt, slow, stream=False)):
                pass
        finally:
            await engine.close()

    with pytest.raises(RequestTimeoutError, match="BENDI_REQUEST_TIMEOUT_S"):
        asyncio.run(too_slow())


def test_a_non_streaming_client_that_leaves_stops_the_replicas_generation(cluster: Cluster) -> None:
    """The replica is asked without streaming, so the router's only way to stop it is to close the
    connection when its own client goes away: no replica keeps generating for nobody."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell a long story."}],
        "max_tokens": 1000,  # 3-7 s on one thread (repetitive text speculates well)
        "temperature": 0.7,
        "ignore_eos": True,
    }
    auth = {"Authorization": f"Bearer {cluster.admin_key}"}

    def active() -> float:
        total = 0.0
        for replica in cluster.replicas:
            # The first replica runs in team mode: its /metrics answers only with the key.
            metrics = httpx.get(replica.base_url + "/metrics", headers=auth, timeout=10)
            metrics.raise_for_status()
            total += sum(
                float(v) for v in re.findall(r"^bendi_active_sequences\{[^}]*\} (\S+)$", metrics.text, re.M)
            )
        return total

    post_and_leave(cluster.router.base_url, "/v1/chat/completions", body, lambda: active() >= 1)
    wait_for(lambda: active() == 0, 5, "the replicas to stop generating")  # long before the answer could end
    wait_for(lambda: set(replica_rows(cluster.router, "bendi_replica_in_flight").values()) == {0.0}, 5,
             "the router to count nothing in flight")  # fmt: skip


def test_local_engine_as_one_of_the_replicas(cluster: Cluster, tmp_path: Path) -> None:
    """`MODEL=local`: this process's own llama.cpp engine serves beside a remote replica (in process)."""
    from bendi.core.paths import DataPaths
    from bendi.core.settings import load_settings
    from bendi.engines.messages import ChatMessage, GenerationRequest, SamplingParams, TextDelta
    from bendi.engines.pool import EnginePool

    remote = cluster.replicas[1].base_url
    settings = load_settings(home=tmp_path, threads=1, context_tokens=1024, parallel_sequences=2,
                             upstreams=(f"{MODEL}=local", f"{MODEL}={remote}"))  # fmt: skip

    async def scenario() -> list[tuple[str, int]]:
        pool = EnginePool(settings, DataPaths(settings.home).ensure())
        try:
            engine = await pool.acquire(MODEL)
            for i in range(4):
                prompt = engine.render_chat([ChatMessage("user", f"Name fruit number {i}.")]).text
                request = GenerationRequest(prompt, SamplingParams(max_tokens=4, temperature=0))
                text = [e.text async for e in engine.generate(request) if isinstance(e, TextDelta)]
                assert "".join(text)
            return [(r.url, r.requests_total) for r in pool.replicas()]
        finally:
            await pool.aclose()

    assert asyncio.run(scenario()) == [("local", 2), (remote, 2)]


def test_a_bad_upstream_flag_stops_serve_with_a_sentence(tmp_path: Path) -> None:
    done = subprocess.run([BENDI, "serve", "--upstream", "m=10.0.0.5:11435"], text=True, capture_output=True,
                          env=dict(os.environ, BENDI_HOME=str(tmp_path)), timeout=60)  # fmt: skip
    assert done.returncode != 0 and "not a server address" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def _decoding(server: ServerProcess) -> tuple[float, float]:
    """(sequences decoding now, tokens generated so far) from a replica's own /metrics."""
    text = httpx.get(server.base_url + "/metrics", timeout=10).text
    values = [float(re.search(rf'^{name}{{model="{MODEL}"}} (\S+)$', text, re.M).group(1))  # type: ignore[union-attr]
              for name in ("bendi_active_sequences", "bendi_engine_generated_tokens_total")]  # fmt: skip
    return values[0], values[1]


def test_kill_one_replica_under_load_and_bring_it_back(cluster: Cluster, tmp_path: Path) -> None:
    router, victim = cluster.router, cluster.replicas[-1]
    results: list[tuple[float, str, str | None]] = []  # (started at, text, error)
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client() as http:
            i = 0
            while not stop.is_set():
                started = time.monotonic()
                text, error = stream_chat(
                    http, router.base_url, f"Client {n}, story {i}: once upon a time", 32
                )
                results.append((started, text, error))
                i += 1

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client, n) for n in range(CLIENTS)]
        # Kill while the victim is decoding, so some streams on it have already sent text to their clients.
        _, tokens = _decoding(victim)

        def decoding() -> bool:
            nonlocal tokens
            active, now = _decoding(victim)
            started, tokens = now > tokens and active >= 2, now
            return started

        wait_for(decoding, 60, "streams decoding on the victim")
        victim.proc.kill()  # SIGKILL: no goodbye, its connections just break
        killed_at = time.monotonic()
        wait_for(lambda: replica_rows(router, "bendi_replica_healthy")[victim.base_url] == 0, 10, "take-out")
        wait_for(
            lambda: sum(1 for r in results if r[0] > killed_at) >= CLIENTS + 4, 120, "answers after the kill"
        )
        stop.set()
        for future in futures:
            future.result()
    after = [r for r in results if r[0] > killed_at]
    assert all(error is None and text for _, text, error in after), [e for *_, e in after if e]
    broken = [error for started, _, error in results if error and started <= killed_at]
    # Streams that were on the victim ended with an error event that says what happened.
    assert broken and all("stopped during this answer" in e for e in broken), broken
    assert replica_rows(router, "bendi_replica_failures_total")[victim.base_url] >= len(broken)

    # Back on the same address: a health check finds it and it takes requests again.
    revived = start_replica(tmp_path / "revived", port=victim.port)
    try:
        wait_for(lambda: replica_rows(router, "bendi_replica_healthy")[victim.base_url] == 1, 15, "recovery")
        before = replica_rows(router, "bendi_replica_requests_total")[victim.base_url]
        for i in range(6):
            chat(router.base_url, f"After the recovery, question {i}")
        assert replica_rows(router, "bendi_replica_requests_total")[victim.base_url] >= before + 2
    finally:
        revived.stop()
