"""Reasoning through the OpenAI API: reasoning_content / reasoning / raw, stream and non-stream.

No DeepSeek-R1 model can be had here, so a replay engine streams a recorded R1 output (in small
chunks, splitting the tags) behind the real gateway and a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
import uvicorn
from openai import OpenAI

from bendi.core.settings import load_settings
from bendi.engines.messages import (
    ChatMessage,
    Finished,
    GenerationEvent,
    GenerationRequest,
    RenderedPrompt,
    TextDelta,
    Usage,
)
from bendi.engines.pool import EnginePool, FitVerdict
from bendi.engines.protocol import EngineInfo
from bendi.gateway.app import create_app
from bendi.services import build_services
from bendi.store.resolve import LocalModel

RECORDED = json.loads((Path(__file__).parent / "data" / "r1_outputs.json").read_text(encoding="utf-8"))[0]


class ReplayEngine:
    """Streams a recorded R1 distill output; its template opens <think> like the real ones."""

    def __init__(self, name: str) -> None:
        self._info = EngineInfo(model_name=name, engine="replay", context_tokens=4096)

    @property
    def info(self) -> EngineInfo:
        return self._info

    def render_chat(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        return RenderedPrompt(
            "<｜User｜>" + messages[-1].content + "<｜Assistant｜><think>\n", opens_reasoning=True
        )

    def count_tokens(self, text: str, *, parse_special: bool = True) -> int:
        return len(text)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        raw = RECORDED["raw"]
        for i in range(0, len(raw), 3):  # 3-character chunks cut "</think>" apart
            yield TextDelta(raw[i : i + 3])
            await asyncio.sleep(0)
        yield Finished("stop", Usage(10, len(raw) // 3))

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[0.0] for _ in texts]

    async def close(self) -> None:
        return None


def start_server(tmp_path: Path, port: int, **settings: object) -> tuple[uvicorn.Server, threading.Thread]:
    config = load_settings(home=tmp_path, port=port, **settings)  # type: ignore[arg-type]
    services = build_services(config)
    services.__dict__["engines"] = EnginePool(
        config,
        services.paths,
        engine_factory=lambda model, _settings: ReplayEngine(model.name),  # type: ignore[arg-type,return-value]
        fit_check=lambda *_: FitVerdict(True, 0, 0),
    )
    # Any name resolves to a fake local model: the replay engine needs no file.
    services.engines.resolve = lambda name: LocalModel(name or "r1-replay", tmp_path, 0, "file")  # type: ignore[method-assign]
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return server, thread


@pytest.fixture()
def server_url(tmp_path: Path, port: int) -> Iterator[str]:
    server, thread = start_server(tmp_path, port)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_non_stream_separates_reasoning_content(server_url: str) -> None:
    client = OpenAI(base_url=server_url + "/v1", api_key="x")
    message = (
        client.chat.completions.create(
            model="deepseek-r1:7b", messages=[{"role": "user", "content": "瓦斯?"}]
        )
        .choices[0]
        .message
    )
    assert message.content == RECORDED["content"]
    assert message.reasoning_content == RECORDED["reasoning"]  # type: ignore[attr-defined]
    assert "</think>" not in message.content and "<think>" not in message.content


def test_stream_deltas_never_mix_reasoning_into_content(server_url: str) -> None:
    client = OpenAI(base_url=server_url + "/v1", api_key="x")
    reasoning, content = [], []
    for chunk in client.chat.completions.create(
        model="r1", messages=[{"role": "user", "content": "?"}], stream=True
    ):
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is None:
            continue
        if getattr(delta, "reasoning_content", None):
            reasoning.append(delta.reasoning_content)  # type: ignore[attr-defined]
        if delta.content:
            content.append(delta.content)
    assert "".join(reasoning) == RECORDED["reasoning"]
    assert "".join(content) == RECORDED["content"]


def test_raw_format_keeps_the_tags_in_content(server_url: str) -> None:
    body = {"model": "r1", "messages": [{"role": "user", "content": "?"}], "reasoning_format": "raw"}
    message = httpx.post(server_url + "/v1/chat/completions", json=body).json()["choices"][0]["message"]
    assert message["content"].startswith("<think>\n")
    assert "</think>" in message["content"]
    assert "reasoning_content" not in message


def test_setting_switches_the_field_name_to_reasoning(tmp_path: Path, port: int) -> None:
    server, thread = start_server(tmp_path, port, reasoning_field="reasoning")
    try:
        body = {"model": "r1", "messages": [{"role": "user", "content": "?"}]}
        message = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body).json()["choices"][0][
            "message"
        ]
        assert message["reasoning"] == RECORDED["reasoning"]
        assert "reasoning_content" not in message
    finally:
        server.should_exit = True
        thread.join(timeout=10)
