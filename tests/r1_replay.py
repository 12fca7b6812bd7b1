"""The R1 replay double: an engine that streams a recorded DeepSeek-R1 distill output, and a real
gateway on uvicorn that serves it (no R1 model can run here; a plain module the tests import)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import uvicorn

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

RECORDED_PATH = Path(__file__).resolve().parent / "gateway" / "data" / "r1_outputs.json"
RECORDED: dict[str, str] = json.loads(RECORDED_PATH.read_text(encoding="utf-8"))[0]
CHUNK_CHARS = 3  # 3-character chunks cut "<think>" and "</think>" apart
ROLE_TAGS = {"user": "<｜User｜>", "assistant": "<｜Assistant｜>"}


class ReplayEngine:
    """Streams RECORDED["raw"]; its template opens <think> like the real R1 distills' does."""

    def __init__(self, name: str = "r1-replay", *, delay_s: float = 0.0) -> None:
        self._info = EngineInfo(model_name=name, engine="replay", context_tokens=4096)
        self._delay_s = delay_s
        self.prompts: list[str] = []

    @property
    def info(self) -> EngineInfo:
        return self._info

    def render_chat(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        text = "".join(ROLE_TAGS.get(m.role, "") + m.content for m in messages)
        return RenderedPrompt(text + "<｜Assistant｜><think>\n", opens_reasoning=True)

    def count_tokens(self, text: str, *, parse_special: bool = True) -> int:
        return len(text)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self.prompts.append(request.prompt)
        raw = RECORDED["raw"]
        for i in range(0, len(raw), CHUNK_CHARS):
            yield TextDelta(raw[i : i + CHUNK_CHARS])
            await asyncio.sleep(self._delay_s)
        yield Finished("stop", Usage(10, len(raw) // CHUNK_CHARS))

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[0.0] for _ in texts]

    async def close(self) -> None:
        return None


def start_replay_server(
    home: Path, port: int, *, default_model: str = "r1-replay", delay_s: float = 0.0, **settings: object
) -> tuple[uvicorn.Server, threading.Thread]:
    """The real gateway on 127.0.0.1:port whose every model is a ReplayEngine; stop it with
    `server.should_exit = True` and `thread.join()`."""
    config = load_settings(home=home, port=port, **settings)  # type: ignore[arg-type]
    services = build_services(config)
    services.__dict__["engines"] = EnginePool(
        config,
        services.paths,
        engine_factory=lambda model, _settings: ReplayEngine(model.name, delay_s=delay_s),  # type: ignore[arg-type,return-value]
        fit_check=lambda *_: FitVerdict(True, 0, 0),
    )
    # Any name resolves to a fake local model: the replay engine needs no file.
    services.engines.resolve = lambda name: LocalModel(name or default_model, home, 0, "file")  # type: ignore[method-assign]
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return server, thread
