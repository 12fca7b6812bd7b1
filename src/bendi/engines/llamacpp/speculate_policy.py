"""When to speculate and how far: per-sequence proposal length, and a per-batch-size comparison of
measured tokens per second with and without speculation, so `auto` never runs the slower way."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from bendi.engines.llamacpp.speculate import NgramIndex

SpeculativeMode = Literal["off", "lookup", "draft", "auto"]
DRAFT_NEEDS_MODEL = (
    "speculative=draft needs a draft model: set draft_model (BENDI_DRAFT_MODEL, or `bendi serve --draft "
    "MODEL`) to a small model with the same tokenizer, or use speculative=auto or lookup (prompt lookup)."
)

# bendi's llama.cpp patch 0002: with this set before the process's first attention, a one-token decode
# uses the same attention code as a verification batch, so speculation cannot change a greedy answer.
SAME_PATH_ENV = "BENDI_FA_SAME_PATH"


def exact_attention_for(mode: str) -> None:
    """Ask llama.cpp for decode-and-verify identical attention when speculation may run (any mode but
    off). Read once per process at its first attention: set it before any model decodes. Costs ~15%
    single-stream decode at long contexts on few-head models, which speculation wins back."""
    if mode != "off":
        os.environ.setdefault(SAME_PATH_ENV, "1")


START_TOKENS = 4  # a new sequence's first proposal length; it grows while proposals hold
RATE_EMA = 0.15  # weight of the newest step in the tokens/second averages
# A sequence whose proposals were mostly wrong rests this many steps before proposing again.
REST_STEPS = 8
MIN_ACCEPTANCE = 0.25  # below this share of accepted proposals, a sequence rests
# In auto mode the losing way is retried after this many steps, so a change in the text or the
# load (a quoting answer starts, other streams join) is noticed.
RETRY_STEPS = 24


@dataclass
class SpecState:
    """Speculation state of one generating sequence."""

    index: NgramIndex | None  # prompt lookup's n-gram history; None when a draft model proposes
    length: int = START_TOKENS  # proposal length for the next step
    acceptance: float = 1.0  # moving share of proposals accepted
    rest: int = 0  # steps left before proposing again


@dataclass
class _Rates:
    spec: float = 0.0  # tokens/s of steps that speculated (moving average; 0 = not measured)
    plain: float = 0.0
    since_spec: int = 0  # steps since the last measured one of each kind
    since_plain: int = 0


@dataclass
class SpeculationPolicy:
    mode: SpeculativeMode = "off"  # the setting's default (core/settings.py)
    max_tokens: int = 8  # proposal length limit (setting speculative_tokens)
    proposed: int = 0  # counters for /metrics
    accepted: int = 0
    _rates: dict[int, _Rates] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.mode != "off" and self.max_tokens > 0

    def want_speculation(self, generating: int) -> bool:
        """Whether a step with this many generating sequences (and no prompt tokens) speculates."""
        if self.mode in ("lookup", "draft"):
            return True
        rates = self._rates.setdefault(generating, _Rates())
        if rates.spec == 0.0 or rates.plain == 0.0:  # measure both ways first
            return rates.spec == 0.0
        if rates.spec >= rates.plain:
            return rates.since_plain < RETRY_STEPS
        return rates.since_spec >= RETRY_STEPS

    def proposal_length(self, state: SpecState, room: int) -> int:
        """How many tokens this sequence may propose for the next step (0 while it rests)."""
        if state.rest > 0:
            state.rest -= 1
            return 0
        return max(0, min(state.length, self.max_tokens, room))

    def proposal(self, state: SpecState, room: int) -> list[int]:
        """This sequence's prompt-lookup proposals for the next step, at most `room` tokens."""
        length = self.proposal_length(state, room)
        return state.index.propose(length) if state.index is not None and length else []

    def record_sequence(self, state: SpecState, proposed: int, accepted: int) -> None:
        self.proposed += proposed
        self.accepted += accepted
        if accepted == proposed:  # the text follows the source: look further ahead
            state.length = min(self.max_tokens, state.length + 2)
        else:
            state.length = max(1, accepted + 1)
        state.acceptance = 0.7 * state.acceptance + 0.3 * (accepted / proposed)
        if state.acceptance < MIN_ACCEPTANCE:
            state.rest, state.acceptance = REST_STEPS, MIN_ACCEPTANCE

    def record_step(self, generating: int, speculated: bool, tokens: int, elapsed_s: float) -> None:
        """A step without prompt tokens: `tokens` emitted by `generating` sequences in `elapsed_s`."""
        if elapsed_s <= 0.0:
            return
        rates = self._rates.setdefault(generating, _Rates())
        rate = tokens / elapsed_s
        if speculated:
            rates.spec = rate if rates.spec == 0.0 else rates.spec + RATE_EMA * (rate - rates.spec)
            rates.since_spec, rates.since_plain = 0, rates.since_plain + 1
        else:
            rates.plain = rate if rates.plain == 0.0 else rates.plain + RATE_EMA * (rate - rates.plain)
            rates.since_plain, rates.since_spec = 0, rates.since_spec + 1
