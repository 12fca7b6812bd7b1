"""The terminal chat's routing of a recorded R1 output: answer to stdout, reasoning dimmed apart or
hidden, history keeps both. (No R1 model here: a replay engine streams the recorded text.)"""

from __future__ import annotations

import asyncio
import io

from bendi.cli.chat_terminal import TerminalChat
from bendi.engines.messages import SamplingParams
from r1_replay import RECORDED, ReplayEngine


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
