"""One generation in flight: its tokens, sampler chain, stop-string holdback and output channel."""

from __future__ import annotations

import asyncio
import codecs
import time
from dataclasses import dataclass, field
from typing import Any

from bendi.engines.messages import Finished, FinishReason, GenerationEvent, SamplingParams, TextDelta, Usage

PENALTY_LAST_N = 64
DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp: pick a random seed

# Events waiting for the scheduler's end-of-step hand-over to their event loops.
Outbox = list[tuple[asyncio.AbstractEventLoop, "asyncio.Queue[Any]", Any]]


def build_sampler(lib: Any, params: SamplingParams, n_vocab: int, banned: tuple[int, ...] = ()) -> Any:
    """A llama.cpp sampler chain honouring this request's parameters (temperature 0 = greedy).
    `banned` tokens (the end-of-generation ones, for ignore_eos) can never be sampled."""
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    if banned:
        biases = (lib.llama_logit_bias * len(banned))(
            *[lib.llama_logit_bias(t, float("-inf")) for t in banned]
        )
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_logit_bias(n_vocab, len(banned), biases))
    if params.repeat_penalty != 1.0 or params.frequency_penalty or params.presence_penalty:
        lib.llama_sampler_chain_add(
            chain,
            # This llama.cpp build still takes n_vocab first; a missing argument killed the request.
            lib.llama_sampler_init_penalties(
                n_vocab,
                PENALTY_LAST_N,
                params.repeat_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            ),
        )
    if params.temperature <= 0.0:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        return chain
    if params.top_k > 0:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(params.top_p, 1))
    if params.min_p > 0.0:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_min_p(params.min_p, 1))
    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(params.temperature))
    seed = DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed))
    return chain


class StopStringFilter:
    """Holds back text that could be the start of a stop string, so no part of one is ever emitted."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Return (text safe to emit, whether a stop string was hit)."""
        if not self.stops:
            return text, False
        self.held += text
        hit = min((i for i in (self.held.find(s) for s in self.stops) if i != -1), default=-1)
        if hit != -1:
            out, self.held = self.held[:hit], ""
            return out, True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.held)), keep, -1):
                if self.held.endswith(stop[:n]):
                    keep = n
                    break
        out = self.held[: len(self.held) - keep]
        self.held = self.held[len(self.held) - keep :]
        return out, False

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


@dataclass
class Sequence:
    """Scheduler-side state of one request. Only the scheduler thread mutates it."""

    request_id: str
    prompt_tokens: list[int]
    params: SamplingParams
    max_new_tokens: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[GenerationEvent | BaseException]
    sampler: Any = None
    slot: int = -1
    n_past: int = 0  # tokens of this sequence already in the KV cache
    cached_tokens: int = 0  # prompt tokens reused from the prefix cache
    generated: int = 0
    next_token: int | None = None  # sampled, not yet decoded
    cancelled: bool = False
    done: bool = False
    started_s: float = field(default_factory=time.monotonic)
    first_token_s: float | None = None
    prefill_done_s: float | None = None
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    stop_filter: StopStringFilter | None = None
    outbox: Outbox | None = None  # set by the scheduler; None: deliver directly
    spec: Any = None  # SpecState once the scheduler speculates for it (speculate_policy.py)
    proposals: list[int] = field(default_factory=list)  # verified in the coming step
    client_id: str = "anonymous"  # whose answer it is: speculation looks up only that client's answers

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.prompt_tokens)

    def emit(self, event: GenerationEvent | BaseException) -> None:
        if self.outbox is not None:
            self.outbox.append((self.loop, self.queue, event))
        else:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def push_text(self, raw: bytes, tokens: int = 1) -> bool:
        """Decode bytes (never splitting a UTF-8 character) and emit; True when a stop string hit."""
        if self.stop_filter is None:
            self.stop_filter = StopStringFilter(self.params.stop)
        text = self.decoder.decode(raw)
        out, hit = self.stop_filter.feed(text)
        if out:
            self.emit(TextDelta(out, tokens))
        return hit

    def finish(self, reason: FinishReason, error: str | None = None, *, emit_tail: bool = True) -> None:
        """Emit the last held text (unless cancelled or cut by a stop string) and the Finished event."""
        if self.done:
            return
        self.done = True
        if emit_tail and reason != "cancelled":
            # Bytes of a character cut off by max_tokens are dropped, not shown as U+FFFD.
            rest = self.decoder.decode(b"", final=True).rstrip("\ufffd")
            if self.stop_filter is not None:
                rest = self.stop_filter.feed(rest)[0] + self.stop_filter.flush()
            if rest:
                self.emit(TextDelta(rest, 0))
        now = time.monotonic()
        prompt_eval = (self.prefill_done_s or now) - self.started_s
        self.emit(
            Finished(
                finish_reason=reason,
                usage=Usage(len(self.prompt_tokens), self.generated, self.cached_tokens),
                time_to_first_token_s=(self.first_token_s or now) - self.started_s,
                total_time_s=now - self.started_s,
                prompt_eval_time_s=prompt_eval,
                error=error,
            )
        )
