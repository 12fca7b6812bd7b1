"""SIGTERM on a real `bendi serve`: no new work, running streams finish (or end with an error event
once the grace period is over), and the process exits 0."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import httpx

MODEL = "smollm2:135m"
URL = "/v1/chat/completions"


def _body(max_tokens: int, **extra: object) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Tell a story."}],
            "max_tokens": max_tokens, "temperature": 0, "stream": True, **extra}  # fmt: skip


def _stream_then_sigterm(server, body: dict[str, object]) -> tuple[list[str], int | None]:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    started = threading.Event()

    def reader() -> None:
        with httpx.stream("POST", server.base_url + URL, json=body, timeout=90) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    started.set()
                lines.append(line)

    thread = threading.Thread(target=reader)
    thread.start()
    assert started.wait(60), "the stream never started"
    os.kill(server.proc.pid, signal.SIGTERM)
    time.sleep(0.3)
    refused = None
    with contextlib.suppress(httpx.HTTPError):  # a closed listener is a refusal too
        refused = httpx.post(server.base_url + URL, json=_body(4, stream=False), timeout=5).status_code
    thread.join(timeout=90)
    return [line for line in lines if line], refused


def test_sigterm_lets_a_running_stream_finish_then_exits_0(bendi_server_factory) -> None:  # type: ignore[no-untyped-def]
    server = bendi_server_factory(env={"BENDI_SHUTDOWN_GRACE_S": "60"}, args=("--model", MODEL))
    events, refused = _stream_then_sigterm(server, _body(48))
    assert server.proc.wait(timeout=60) == 0
    assert refused in (None, 503)
    assert events[-1] == "data: [DONE]"
    assert not any('"error"' in line for line in events)
    assert '"finish_reason":"length"' in events[-2] or '"finish_reason":"stop"' in events[-2]


def test_sigterm_ends_streams_past_the_grace_period_with_an_error_event(bendi_server_factory) -> None:  # type: ignore[no-untyped-def]
    server = bendi_server_factory(env={"BENDI_SHUTDOWN_GRACE_S": "1"}, args=("--model", MODEL))
    events, _ = _stream_then_sigterm(server, _body(1500, ignore_eos=True))
    assert server.proc.wait(timeout=60) == 0
    assert events[-1] == "data: [DONE]"
    assert '"code":"server_overloaded"' in events[-2] and "shutting down" in events[-2]
