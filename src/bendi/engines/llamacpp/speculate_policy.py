"""When to speculate and how far.

`auto` with prompt lookup chooses each step's proposals by expected gain: every proposed token is
worth the chance that it and those before it are accepted (from its sequence's acceptance so far),
and the step takes the number of them that maximizes expected tokens per second under the measured
cost of each batch size (step_costs.py). One stream on a CPU thus proposes long runs while an
answer quotes its sources and nothing while it does not; beside many streams, where each extra
token costs nearly a full token's compute, only the surest proposals go in.
`lookup` always proposes, with a per-sequence length that grows while proposals hold. A draft
model's proposals (`draft`, or `auto` with a draft model) are judged by a per-batch-size comparison
of measured tokens per second with and without them, so `auto` never runs the slower way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bendi.engines.llamacpp.speculate import NgramIndex
from bendi.engines.llamacpp.step_costs import DecayedRate, StepCosts

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
# load (a quoting answer starts, other streams join) is noticed. Each retry that loses again doubles
# the wait, up to MAX_RETRY_STEPS: where speculation never pays (many streams on few cores), its
# trials would otherwise cost a few percent of every answer.
RETRY_STEPS = 24
MAX_RETRY_STEPS = 384
TRIAL_STEPS = 4  # ... for this many steps in a row, so the retry is judged on more than one step
# A sequence's chance that a proposed token is accepted, given those before it were: a prior of
# PRIOR_ACCEPTANCE worth PRIOR_TRIES tries, then its own tries, each earlier one kept at this weight.
PRIOR_ACCEPTANCE = 0.5
PRIOR_TRIES = 2.0
ACCEPTANCE_DECAY = 0.9


@dataclass
class SpecState:
    """Speculation state of one generating sequence."""

    index: NgramIndex | None  # prompt lookup's n-gram history; None when a draft model proposes
    length: int = START_TOKENS  # proposal length for the next step
    acceptance: float = 1.0  # moving share of proposals accepted
    rest: int = 0  # steps left before proposing again
    hits: float = 0.0  # decayed proposed tokens accepted ...
    tries: float = 0.0  # ... of those the target model judged (up to and including a rejection)
    # The same for proposals from the client's earlier answers (a weaker cue, judged apart), and
    # whether this step's proposals came from there.
    answer_hits: float = 0.0
    answer_tries: float = 0.0
    from_answers: bool = False
    # (history length, token, from answers): the proposal's first token on a step that proposed
    # nothing, checked against what was decoded instead, so a sequence's acceptance is known before
    # it pays for it.
    shadow: tuple[int, int, bool] | None = None

    @property
    def token_acceptance(self) -> float:
        """The chance a proposed token from this step's source is accepted, given those before it were."""
        hits, tries = (self.answer_hits, self.answer_tries) if self.from_answers else (self.hits, self.tries)
        return (hits + PRIOR_ACCEPTANCE * PRIOR_TRIES) / (tries + PRIOR_TRIES)

    def judge(self, hits: int, tries: int, *, from_answers: bool = False) -> None:
        if from_answers:
            self.answer_hits = self.answer_hits * ACCEPTANCE_DECAY + hits
            self.answer_tries = self.answer_tries * ACCEPTANCE_DECAY + tries
        else:
            self.hits = self.hits * ACCEPTANCE_DECAY + hits
            self.tries = self.tries * ACCEPTANCE_DECAY + tries

    def settle_shadow(self) -> None:
        """Count the shadow proposal's first token as a try, once the token it guessed is known."""
        if self.shadow is None or self.index is None:
            return
        at, token, from_answers = self.shadow
        if len(self.index.tokens) > at:
            self.judge(int(self.index.tokens[at] == token), 1, from_answers=from_answers)
            self.shadow = None


@dataclass
class _Way(DecayedRate):
    """The steps taken one way: their rate, and how long ago the last was."""

    keep: float = 1 - RATE_DECAY
    since: int = 0  # steps taken the other way since this way's last

    def add(self, tokens: float, seconds: float) -> None:
        super().add(tokens, seconds)
        self.since = 0


@dataclass
class _Rates:
    spec: _Way = field(default_factory=_Way)
    plain: _Way = field(default_factory=_Way)
    trial_left: int = 0  # steps of the current trial of one way
    trial_spec: bool = False  # which way is on trial
    retry_after: int = RETRY_STEPS  # steps the loser waits for its next trial
    retried: bool = False  # the current trial is the loser's retry
    spec_won: bool = False  # the way that won the last comparison


@dataclass
class SpeculationPolicy:
    mode: SpeculativeMode = "off"  # the setting's default (core/settings.py)
    max_tokens: int = 8  # proposal length limit (setting speculative_tokens)
    proposed: int = 0  # counters for /metrics
    accepted: int = 0
    _rates: dict[int, _Rates] = field(default_factory=dict)
    _costs: dict[int, StepCosts] = field(default_factory=dict)  # per number of generating sequences

    @property
    def enabled(self) -> bool:
        return self.mode != "off" and self.max_tokens > 0

    def carry_over(self, previous: SpeculationPolicy) -> None:
        """Take over the counters and measured rates of the policy this one replaces: how fast
        steps are with and without proposals belongs to the engine and its load, not to a setting."""
        self.proposed, self.accepted = previous.proposed, previous.accepted
        self._rates, self._costs = previous._rates, previous._costs

    def choose_lengths(
        self, generating: int, candidates: list[tuple[SpecState, list[int]]], room: int
    ) -> list[int]:
        """How many of its candidate proposals each sequence puts in this step (auto mode, prompt
        lookup). Each sequence gets its own KV stream, and llama.cpp decodes the sequences of a step
        together only for as many tokens as all have, so a step costs what its longest proposal
        makes it: one length L is chosen for the step, the one that maximizes expected tokens per
        second, and each sequence proposes up to L of its candidates."""
        chances: list[list[float]] = []  # per sequence: the chance each candidate is accepted
        for state, proposals in candidates:
            state.settle_shadow()
            acceptance, chance, row = state.token_acceptance, 1.0, []
            for _ in proposals:
                chance *= acceptance
                row.append(chance)
            chances.append(row)
        costs = self._costs.setdefault(generating, StepCosts())
        longest = min(max((len(row) for row in chances), default=0), max(0, room) // max(1, generating))
        best, best_rate, expected = 0, generating / costs.estimate(generating), float(generating)
        for length in range(1, longest + 1):
            expected += sum(row[length - 1] for row in chances if len(row) >= length)
            rate = expected / costs.estimate(generating * (1 + length))
            if rate > best_rate:
                best, best_rate = length, rate
        lengths = [min(best, len(row)) for row in chances]
        for (state, proposals), length in zip(candidates, lengths, strict=True):
            if length == 0 and proposals and state.index is not None:
                state.shadow = (len(state.index.tokens), proposals[0], state.from_answers)
        return lengths

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
        if rates.retried:  # the loser's trial is over: wait longer if it lost again
            rates.retried = False
            lost_again = spec_wins == rates.spec_won
            rates.retry_after = min(2 * rates.retry_after, MAX_RETRY_STEPS) if lost_again else RETRY_STEPS
        elif spec_wins != rates.spec_won:  # the rates crossed: things change, retry soon
            rates.retry_after = RETRY_STEPS
        rates.spec_won = spec_wins
        loser = rates.plain if spec_wins else rates.spec
        if loser.since >= rates.retry_after:  # the text or the load may have changed: try it again
            rates.retried = True
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
        state.judge(accepted, accepted + (accepted < proposed), from_answers=state.from_answers)
        if accepted == proposed:  # the text follows the source: look further ahead
            state.length = min(self.max_tokens, state.length + 2)
        else:
            state.length = max(1, accepted + 1)
        state.acceptance = 0.7 * state.acceptance + 0.3 * (accepted / proposed)
        if state.acceptance < MIN_ACCEPTANCE:
            state.rest, state.acceptance = REST_STEPS, MIN_ACCEPTANCE

    def record_step(self, generating: int, width: int, tokens: int, elapsed_s: float) -> None:
        """A step without prompt tokens: `tokens` emitted by `generating` sequences, which decoded up
        to `width` tokens each (their own and their proposals), in `elapsed_s`."""
        if elapsed_s <= 0.0:
            return
        self._costs.setdefault(generating, StepCosts()).record(generating * width, elapsed_s)
        rates = self._rates.setdefault(generating, _Rates())
        taken, other = (rates.spec, rates.plain) if width > 1 else (rates.plain, rates.spec)
        taken.add(tokens, elapsed_s)
        other.since += 1
