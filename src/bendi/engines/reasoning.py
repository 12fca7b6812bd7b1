"""Split a streamed DeepSeek-R1-style output into its reasoning chain (<think>…</think>) and answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
Channel = Literal["reasoning", "content"]


@dataclass(frozen=True)
class Piece:
    channel: Channel
    text: str


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ReasoningSplitter:
    """Feed it text pieces as they stream; it returns what is reasoning and what is content.

    Handles: a template that already opened <think> in the prompt (the model then only emits
    </think>), tags split across pieces at any character, an opening <think> after leading
    whitespace, and a model that never closes the tag (everything stays reasoning)."""

    def __init__(self, *, starts_in_reasoning: bool = False) -> None:
        self._mode: Literal["undecided", "reasoning", "content"] = (
            "reasoning" if starts_in_reasoning else "undecided"
        )
        self._held = ""
        self._at_section_start = True  # strip the newlines that follow <think> and </think>
        self.saw_reasoning = starts_in_reasoning

    @property
    def in_reasoning(self) -> bool:
        return self._mode == "reasoning"

    def feed(self, text: str) -> list[Piece]:
        self._held += text
        pieces: list[Piece] = []
        while self._held:
            if self._mode == "undecided":
                stripped = self._held.lstrip()
                if stripped.startswith(THINK_OPEN):
                    self._held = stripped[len(THINK_OPEN) :]
                    self._mode, self.saw_reasoning, self._at_section_start = "reasoning", True, True
                    continue
                if THINK_OPEN.startswith(stripped):  # could still become "<think>": wait for more
                    break
                self._mode = "content"
                continue
            if self._mode == "reasoning":
                if self._at_section_start:
                    # A model may repeat the <think> its template already opened.
                    stripped = self._held.lstrip()
                    if stripped.startswith(THINK_OPEN):
                        self._held = stripped[len(THINK_OPEN) :]
                        continue
                    if not stripped or THINK_OPEN.startswith(stripped):
                        break
                    self._held = stripped
                    self._at_section_start = False
                end = self._held.find(THINK_CLOSE)
                if end != -1:
                    if self._held[:end].rstrip():
                        pieces.append(Piece("reasoning", self._held[:end].rstrip()))
                    self._held = self._held[end + len(THINK_CLOSE) :]
                    self._mode, self._at_section_start = "content", True
                    continue
                keep = _partial_suffix(self._held, THINK_CLOSE)
                emit = self._held[: len(self._held) - keep]
                # Hold trailing whitespace: if "</think>" follows, it is not part of the reasoning.
                keep += len(emit) - len(emit.rstrip())
                emit = emit.rstrip()
                if emit:
                    pieces.append(Piece("reasoning", emit))
                self._held = self._held[len(self._held) - keep :]
                break
            # content
            if self._at_section_start:
                stripped = self._held.lstrip()
                if not stripped:
                    self._held = ""
                    break
                self._held, self._at_section_start = stripped, False
            pieces.append(Piece("content", self._held))
            self._held = ""
        return pieces

    def finish(self) -> list[Piece]:
        """Flush what is held at the end of the stream."""
        held, self._held = self._held, ""
        if not held or (self._at_section_start and not held.strip()):
            return []
        if self._mode == "reasoning":
            text = held.strip() if self._at_section_start else held.rstrip()
            return [Piece("reasoning", text)] if text else []
        return [Piece("content", held.lstrip() if self._at_section_start else held)]


def split_reasoning(text: str, *, starts_in_reasoning: bool = False) -> tuple[str, str]:
    """Split a complete output into (reasoning, content)."""
    splitter = ReasoningSplitter(starts_in_reasoning=starts_in_reasoning)
    pieces = splitter.feed(text) + splitter.finish()
    reasoning = "".join(p.text for p in pieces if p.channel == "reasoning")
    content = "".join(p.text for p in pieces if p.channel == "content")
    return reasoning, content
