"""When to speculate and how far: per-sequence proposal length, and a per-batch-size comparison of
measured tokens per second with and without speculation, so `auto` never runs the slower way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bendi.engines.llamacpp.speculate import NgramIndex

SpeculativeMode = Literal["off", "lookup", "draft", "auto"]
DRAFT_NEEDS_MODEL = (
    "speculative=draft needs a draft model: set draft_model (BENDI_DRAFT_MODEL, or `bendi serve --draft "
    "MODEL`) to a small model with the same tokenizer, or use speculative=auto or lookup (prompt lookup)."
)

START_TOKENS = 4  # a new sequence's first proposal length; it grows while proposals hold
# Tokens and seconds of each way are summed with this decay per step of that way (a window of ~10
# steps), and compared as sums: one step's rate is noisy (a rejected proposal: 1 token in a long
# step; an accepted run: 6 in a short one), and an average of such rates let a few bad steps in a row
# hand a quoting answer to plain decoding for most of its length.
RATE_DECAY = 0.1
# A sequence whose proposals were mostly wrong rests this many steps before proposing again.
REST_STEPS = 8
MIN_ACCEPTANCE = 0.25  # below this share of accepted proposals, a sequence rests
# In auto mode the losing way is retried after this many steps, so a change in the text or the
# load (a quoting answer starts, other streams join) is noticed.
RETRY_STEPS = 24
TRIAL_STEPS = 4  # ... for this many steps in a row, so the retry is judged on more than one step


@dataclass
class SpecState:
    """Speculation state of one generating sequence."""

    index: NgramIndex | None  # prompt lookup's n-gram history; None when a draft model proposes
    length: int = START_TOKENS  # proposal length for the next step
    acceptance: float = 1.0  # moving share of proposals accepted
    rest: int = 0  # steps left before proposing again


@dataclass
class _Way:
    """Decayed sums of the tokens and seconds of the steps taken one way."""

    tokens: float = 0.0
    seconds: float = 0.0
    since: int = 0  # steps taken the other way since this way's last

    @property
    def measured(self) -> bool:
        return self.seconds > 0.0

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def add(self, tokens: int, seconds: float) -> None:
        self.tokens = self.tokens * (1 - RATE_DECAY) + tokens
        self.seconds = self.seconds * (1 - RATE_DECAY) + seconds
        self.since = 0


@dataclass
class _Rates:
    spec: _Way = field(default_factory=_Way)
    plain: _Way = field(default_factory=_Way)
    trial_left: int = 0  # steps of the current trial of one way
    trial_spec: bool = False  # which way is on trial


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

    def carry_over(self, previous: SpeculationPolicy) -> None:
        """Take over the counters and measured rates of the policy this one replaces: how fast
        steps are with and without proposals belongs to the engine and its load, not to a setting."""
        self.proposed, self.accepted = previous.proposed, previous.accepted
        self._rates = previous._rates

    def want_speculation(self, generating: int) -> bool:
        """Whether a step with this many generating sequences (and no prompt tokens) speculates."""
        if self.mode in ("lookup", "draft"):
            return True
        rates = self._rates.setdefault(generating, _Rates())
        if rates.trial_left > 0:
            rates.trial_left -= 1
            return rates.trial_spec
        if not (rates.spec.measured and rates.plain.measured):  # measure both ways first
            return self._trial(rates, not rates.spec.measured)
        spec_wins = rates.spec.rate >= rates.plain.rate
        loser = rates.plain if spec_wins else rates.spec
        if loser.since >= RETRY_STEPS:  # the text or the load may have changed: try it again
            return self._trial(rates, not spec_wins)
        return spec_wins

    @staticmethod
    def _trial(rates: _Rates, spec: bool) -> bool:
        rates.trial_left, rates.trial_spec = TRIAL_STEPS - 1, spec
        return spec

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
        taken, other = (rates.spec, rates.plain) if speculated else (rates.plain, rates.spec)
        taken.add(tokens, elapsed_s)
        other.since += 1
