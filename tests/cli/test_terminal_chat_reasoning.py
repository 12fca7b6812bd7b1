"""The terminal chat's routing of a recorded R1 output: answer to stdout, reasoning dimmed apart or
hidden, history keeps both. (No R1 model here: a replay engine streams the recorded text.)"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from bendi.cli.chat_terminal import TerminalChat
from bendi.engines.messages import (
    ChatMessage,
    Finished,
    GenerationEvent,
    GenerationRequest,
    RenderedPrompt,
    SamplingParams,
    TextDelta,
    Usage,
)
from bendi.engines.protocol import EngineInfo

DATA = Path(__file__).resolve().parents[1] / "gateway" / "data" / "r1_outputs.json"
RECORDED = json.loads(DATA.read_text(encoding="utf-8"))[0]


class ReplayEngine:
    def __init__(self) -> None:
        self.prompts: list[str] = []

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(model_name="r1-replay", engine="replay", context_tokens=4096)

    def render_chat(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        text = "".join(f"<{m.role}>{m.content}" for m in messages) + "<assistant><think>\n"
        return RenderedPrompt(text, opens_reasoning=True)

    def count_tokens(self, text: str, *, parse_special: bool = True) -> int:
        return len(text)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self.prompts.append(request.prompt)
        raw = RECORDED["raw"]
        for i in range(0, len(raw), 5):
            yield TextDelta(raw[i : i + 5])
            await asyncio.sleep(0)
        yield Finished("stop", Usage(10, 10))

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[0.0] for _ in texts]

    async def close(self) -> None:
        return None


def test_answer_goes_to_stdout_and_reasoning_apart_then_into_history() -> None:
    out, err = io.StringIO(), io.StringIO()
    engine = ReplayEngine()
    chat = TerminalChat(engine, SamplingParams(), out=out, err=err, color=True)  # type: ignore[arg-type]
    result = asyncio.run(chat.answer("瓦斯浓度?", reasoning_to=err))
    assert result.finished is not None and not result.interrupted
    assert out.getvalue() == RECORDED["content"]
    assert RECORDED["reasoning"] in err.getvalue() and "\x1b[2m" in err.getvalue()  # dimmed
    assert "</think>" not in out.getvalue() + err.getvalue()
    assert [m.role for m in chat.history] == ["user", "assistant"]
    assert chat.history[1].content == RECORDED["content"]
    assert chat.history[1].reasoning == RECORDED["reasoning"]
    asyncio.run(chat.answer("再说一遍", reasoning_to=err))
    assert "瓦斯浓度?" in engine.prompts[1]  # the second turn carries the first


def test_hidden_reasoning_is_not_printed_anywhere() -> None:
    out, err = io.StringIO(), io.StringIO()
    chat = TerminalChat(ReplayEngine(), SamplingParams(), out=out, err=err, show_thinking=False)  # type: ignore[arg-type]
    asyncio.run(chat.answer("?", reasoning_to=err))
    assert out.getvalue() == RECORDED["content"]
    assert err.getvalue() == ""
