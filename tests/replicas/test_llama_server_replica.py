"""A bendi router in front of a real stock llama-server (llama.cpp's own C++ server): the model id and
context from its /v1/models and /props, its chat template, both APIs with usage, the reasoning split,
and its errors. Skipped, with the reason, when llama-server has not been built
(`bash benchmarks/build_llama_server.sh`; BENDI_TEST_LLAMA_SERVER names another binary)."""

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
from cluster import start_router

from server_process import ServerProcess, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "subprocess_engines"))
from make_hf_model import THINK_SYSTEM, THINK_TEMPLATE  # noqa: E402

DEFAULT_BINARY = Path("/tmp/llama-server-build/llama-server")  # where build_llama_server.sh puts it
NAME = "smol"  # the name clients use; llama-server serves it under its alias SERVED
SERVED = "smollm2-on-llama-server"
CONTEXT = 1024


@dataclass
class Setup:
    llama: str  # llama-server's base URL
    router: ServerProcess


def _binary() -> Path:
    named = os.environ.get("BENDI_TEST_LLAMA_SERVER")
    path = Path(named) if named else DEFAULT_BINARY
    if not path.is_file():
        pytest.skip(f"llama-server is not built ({path}): run `bash benchmarks/build_llama_server.sh`")
    return path


@pytest.fixture(scope="module")
def setup(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    binary = _binary()
    root = tmp_path_factory.mktemp("llama-server")
    template = root / "think.jinja"
    template.write_text(THINK_TEMPLATE)
    port = free_port()
    log = open(root / "llama-server.log", "wb")  # noqa: SIM115  (closed below)
    argv = [str(binary), "-m", str(smollm2_path), "--host", "127.0.0.1", "--port", str(port), "-c", str(CONTEXT),
            "-np", "1", "-t", "1", "--jinja", "--chat-template-file", str(template), "-a", SERVED]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    router = None
    try:
        deadline = time.monotonic() + 120
        while not _healthy(base):
            assert proc.poll() is None, (root / "llama-server.log").read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "llama-server did not start"
            time.sleep(0.2)
        router = start_router(root / "router", ("--upstream", f"{NAME}={base}"))
        yield Setup(base, router)
    finally:
        if router is not None:
            router.stop()
        proc.terminate()
        proc.wait(20)
        log.close()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _openai(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)


QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_served_by_name_with_llama_servers_template_and_context(setup: Setup) -> None:
    client = _openai(setup.router.base_url)
    assert NAME in {m.id for m in client.models.list()}
    assert NAME in {
        m["name"] for m in httpx.get(setup.router.base_url + "/api/tags", timeout=10).json()["models"]
    }
    # bendi renders the chat with the template it read from /props: llama-server's own chat endpoint,
    # which renders it itself, gives the same prompt (token count) and the same greedy answer.
    routed = client.chat.completions.create(model=NAME, messages=QUESTION, max_tokens=12, temperature=0)  # type: ignore[arg-type]
    direct = _openai(setup.llama).chat.completions.create(
        model=SERVED,
        messages=QUESTION,
        max_tokens=12,
        temperature=0,  # type: ignore[arg-type]
    )
    assert routed.choices[0].message.content == direct.choices[0].message.content
    assert routed.usage is not None and direct.usage is not None
    assert (routed.usage.prompt_tokens, routed.usage.completion_tokens) == (
        direct.usage.prompt_tokens,
        direct.usage.completion_tokens,
    )
    ps = httpx.get(setup.router.base_url + "/api/ps", timeout=10).json()["models"]
    row = next(m for m in ps if m["name"] == NAME)
    assert row["replicas"][0]["url"] == setup.llama and row["replicas"][0]["healthy"]
    assert row["context_length"] == CONTEXT  # from /props: n_ctx of llama-server's one slot


def test_streamed_and_ollama_answers_match_with_usage(setup: Setup) -> None:
    client = _openai(setup.router.base_url)
    whole = client.chat.completions.create(model=NAME, messages=QUESTION, max_tokens=12, temperature=0)  # type: ignore[arg-type]
    chunks = list(client.chat.completions.create(
        model=NAME, messages=QUESTION, max_tokens=12, temperature=0, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    ))  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    usage = chunks[-1].usage
    assert usage is not None and whole.usage is not None and usage.prompt_tokens == whole.usage.prompt_tokens
    reply = ollama.Client(host=setup.router.base_url).chat(
        model=NAME, messages=QUESTION, options={"num_predict": 12, "temperature": 0}
    )
    assert reply.message.content == whole.choices[0].message.content
    assert (
        reply.prompt_eval_count == whole.usage.prompt_tokens
        and reply.eval_count == whole.usage.completion_tokens
    )


def test_reasoning_is_split_from_the_answer(setup: Setup) -> None:
    """llama-server's template opens <think> for THINK_SYSTEM: bendi sees that in the prompt it
    rendered and splits what follows as reasoning, in both APIs."""
    messages = [{"role": "system", "content": THINK_SYSTEM}, *QUESTION]
    reply = _openai(setup.router.base_url).chat.completions.create(
        model=NAME,
        messages=messages,
        max_tokens=16,
        temperature=0,  # type: ignore[arg-type]
    )
    reasoning = getattr(reply.choices[0].message, "reasoning_content", None)
    assert reasoning and reasoning.strip()
    assert "<think>" not in (reply.choices[0].message.content or "")
    thinking = ollama.Client(host=setup.router.base_url).chat(
        model=NAME, messages=messages, options={"num_predict": 16, "temperature": 0}
    )
    assert thinking.message.thinking and thinking.message.thinking.strip() == reasoning.strip()


def test_a_prompt_over_the_context_is_a_clear_400(setup: Setup) -> None:
    long = " ".join(f"word{i}" for i in range(CONTEXT * 2))
    response = httpx.post(setup.router.base_url + "/v1/chat/completions", timeout=120, json={
        "model": NAME, "messages": [{"role": "user", "content": long}], "max_tokens": 4})  # fmt: skip
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert str(CONTEXT) in message and "Traceback" not in message, message
    # The replica is still in service afterwards: a refused request is not a failed server.
    assert (
        _openai(setup.router.base_url)
        .chat.completions.create(
            model=NAME,
            messages=QUESTION,
            max_tokens=2,  # type: ignore[arg-type]
        )
        .choices[0]
        .message.content
        is not None
    )
