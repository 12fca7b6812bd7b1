"""The interactive terminal chat of `bendi run`: streaming, history, dimmed reasoning, Ctrl-C stops."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TextIO

from bendi.engines.messages import ChatMessage, Finished, GenerationRequest, SamplingParams, TextDelta
from bendi.engines.protocol import Engine
from bendi.engines.reasoning import ReasoningSplitter

DIM, RESET = "\x1b[2m", "\x1b[0m"
HELP = """Commands:
  /think on|off   show or hide the reasoning chain
  /clear          forget the conversation so far
  /set system TEXT   set a system prompt
  /bye            leave (Ctrl-D works too)
Ctrl-C stops the current answer and keeps the chat open."""


@dataclass
class TurnResult:
    reasoning: str = ""
    content: str = ""
    finished: Finished | None = None
    interrupted: bool = False


@dataclass
class TerminalChat:
    engine: Engine
    params: SamplingParams
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    show_thinking: bool = True
    system: str | None = None
    history: list[ChatMessage] = field(default_factory=list)
    color: bool = False

    async def answer(self, user_text: str, *, reasoning_to: TextIO | None = None) -> TurnResult:
        """Stream one answer; reasoning goes dimmed to `reasoning_to` (default: the chat's stdout)."""
        messages = ([ChatMessage("system", self.system)] if self.system else []) + self.history
        messages.append(ChatMessage("user", user_text))
        rendered = self.engine.render_chat(messages)
        splitter = ReasoningSplitter(starts_in_reasoning=rendered.opens_reasoning)
        result = TurnResult()
        thinking_out = reasoning_to or self.out
        state = {"thinking": False}

        def show(channel: str, text: str) -> None:
            if channel == "reasoning":
                result.reasoning += text
                if not self.show_thinking:
                    return
                if not state["thinking"]:
                    thinking_out.write((DIM if self.color else "") + "Thinking...\n")
                    state["thinking"] = True
                thinking_out.write(text)
                thinking_out.flush()
                return
            if state["thinking"]:
                thinking_out.write("\n...done thinking." + (RESET if self.color else "") + "\n\n")
                state["thinking"] = False
            result.content += text
            self.out.write(text)
            self.out.flush()

        events = self.engine.generate(GenerationRequest(rendered.text, self.params)).__aiter__()
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    for piece in splitter.feed(event.text):
                        show(piece.channel, piece.text)
                else:
                    result.finished = event
            for piece in splitter.finish():
                show(piece.channel, piece.text)
        except asyncio.CancelledError:
            result.interrupted = True
        finally:
            await events.aclose()  # type: ignore[attr-defined]
            if state["thinking"]:
                thinking_out.write((RESET if self.color else "") + "\n")
        if not result.interrupted:
            self.history += [
                ChatMessage("user", user_text),
                ChatMessage("assistant", result.content, result.reasoning or None),
            ]
        return result

    def command(self, line: str) -> bool:
        """Handle a /command; False means leave."""
        words = line.split(maxsplit=2)
        name = words[0].lower()
        if name in ("/bye", "/exit", "/quit"):
            return False
        if name == "/think" and len(words) > 1 and words[1] in ("on", "off"):
            self.show_thinking = words[1] == "on"
            self.out.write(f"Reasoning will be {'shown' if self.show_thinking else 'hidden'}.\n")
        elif name == "/clear":
            self.history.clear()
            self.out.write("Cleared the conversation.\n")
        elif name == "/set" and len(words) == 3 and words[1] == "system":
            self.system = words[2]
            self.out.write("System prompt set.\n")
        else:
            self.out.write(HELP + "\n")
        return True

    @staticmethod
    def _run_turn(loop: asyncio.AbstractEventLoop, task: asyncio.Task[TurnResult]) -> TurnResult:
        """Run one answer; Ctrl-C at any moment cancels it (the engine frees its sequence) and the
        chat stays open."""
        loop.add_signal_handler(signal.SIGINT, task.cancel)
        try:
            while True:
                try:
                    return loop.run_until_complete(task)
                except KeyboardInterrupt:  # arrived while the handler was not yet installed
                    task.cancel()
                except asyncio.CancelledError:
                    return TurnResult(interrupted=True)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    def interactive(
        self, model_name: str, loop: asyncio.AbstractEventLoop, on_exit: Callable[[], Awaitable[None]]
    ) -> int:
        """Read-eval loop on `loop` (the one the engine was loaded on); `on_exit` releases the model."""
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        self.out.write(f"bendi · {model_name} · /help for commands, /bye to leave\n")
        try:
            while True:
                try:
                    line = input(">>> ")
                except KeyboardInterrupt:
                    self.out.write("\nUse /bye or Ctrl-D to leave.\n")
                    continue
                except EOFError:
                    self.out.write("\n")
                    return 0
                line = line.strip()
                if not line:
                    continue
                if line.startswith("/"):
                    if not self.command(line):
                        return 0
                    continue
                task = loop.create_task(self.answer(line))
                result = self._run_turn(loop, task)
                self.out.write("\n" if not result.interrupted else "\n[stopped]\n")
                self.out.write("\n")
                self.out.flush()
        finally:
            loop.run_until_complete(on_exit())
            loop.close()
