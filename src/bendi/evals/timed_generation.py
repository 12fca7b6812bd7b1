"""One chat generation with the timings an evaluation reports: time to first token and decode speed.

Timings are taken here, around the engine call, and not from the engine's own counters, so that
every kind of engine (in-process llama.cpp, a vLLM server, an upstream) is measured the same way:
as a user waiting for the answer would feel it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from bendi.engines.messages import ChatMessage, Finished, GenerationRequest, SamplingParams, TextDelta
from bendi.engines.protocol import Engine
from bendi.engines.reasoning import ReasoningSplitter


@dataclass(frozen=True)
class TimedGeneration:
    content: str
    reasoning: str
    ttft_s: float | None  # None: nothing was generated
    total_s: float
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Tokens per second after the first one (prompt processing is in TTFT, not here)."""
        if self.ttft_s is None or self.completion_tokens < 2:
            return None
        decode_s = self.total_s - self.ttft_s
        return (self.completion_tokens - 1) / decode_s if decode_s > 0 else None


async def generate_timed(
    engine: Engine, messages: Sequence[ChatMessage], params: SamplingParams, *, client_id: str = "bendi-eval"
) -> TimedGeneration:
    rendered = engine.render_chat(messages)
    # R1-style models think first; only the content after </think> is the answer that is scored.
    splitter = ReasoningSplitter(starts_in_reasoning=rendered.opens_reasoning)
    parts = {"reasoning": [], "content": []}  # type: dict[str, list[str]]
    started = time.perf_counter()
    first: float | None = None
    finished: Finished | None = None
    stream = engine.generate(GenerationRequest(prompt=rendered.text, params=params, client_id=client_id))
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                if first is None and event.text:
                    first = time.perf_counter()
                for piece in splitter.feed(event.text):
                    parts[piece.channel].append(piece.text)
            elif isinstance(event, Finished):
                finished = event
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    for piece in splitter.finish():
        parts[piece.channel].append(piece.text)
    total = time.perf_counter() - started
    usage = finished.usage if finished else None
    if finished is not None and finished.error:
        raise RuntimeError(finished.error)
    return TimedGeneration(
        content="".join(parts["content"]).strip(),
        reasoning="".join(parts["reasoning"]).strip(),
        ttft_s=None if first is None else first - started,
        total_s=total,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        finish_reason=finished.finish_reason if finished else "error",
    )
