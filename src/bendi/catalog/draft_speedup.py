"""The speed-up to expect from a draft model (speculative decoding), from a stated model.

Decode is memory-bound: verifying k proposed tokens plus one costs about one target decode, and the
draft's k proposals cost k x c of one, where c = draft bytes read per token / the target's (about the
ratio of their file sizes). At per-token acceptance a a step yields E = (1 - a^(k+1)) / (1 - a) tokens,
so the speed-up is E / (1 + k c). Where the target's own prefill estimate says it cannot take k + 1
tokens in one decode's time (CPUs), verifying costs that compute time instead of 1.

Acceptance is an assumption, 0.5 to 0.7, the range published runs fall in: ubicloud/ubicloud PR #2885
(R1-Distill-Qwen-32B with a 0.5B Qwen2.5 draft on vLLM: ~2x at low concurrency, ~10% slower at high)
and mattn/tensai PR #44 (a 7B Q4 target with a 0.5B draft: 1.33x at 51% acceptance; a 1.5B target
"not worth it"). See docs/advisor.md, "Draft models".
"""

from __future__ import annotations

from dataclasses import dataclass

LOW_ACCEPTANCE = 0.5
HIGH_ACCEPTANCE = 0.7
PLANNING_ACCEPTANCE = 0.6  # k is chosen here, between the two assumptions
MAX_PROPOSED_TOKENS = 8


def expected_tokens(acceptance: float, proposed: int) -> float:
    """Tokens one verification step yields: the accepted run of proposals plus the target's own token."""
    if acceptance >= 1.0:
        return proposed + 1.0
    return (1 - acceptance ** (proposed + 1)) / (1 - acceptance)


def step_cost(proposed: int, cost_ratio: float, batch_token_cost: float = 0.0) -> float:
    """One step in target decodes: verifying proposed + 1 tokens (one decode, or their compute time
    when that is longer; `batch_token_cost` = one token's prefill time / one decode) plus k draft decodes."""
    return max(1.0, (proposed + 1) * batch_token_cost) + proposed * cost_ratio


def speedup(acceptance: float, proposed: int, cost_ratio: float, batch_token_cost: float = 0.0) -> float:
    return expected_tokens(acceptance, proposed) / step_cost(proposed, cost_ratio, batch_token_cost)


@dataclass(frozen=True)
class SpeedupRange:
    proposed_tokens: int  # k, the best at PLANNING_ACCEPTANCE
    cost_ratio: float  # c
    batch_token_cost: float
    low: float  # speed-up at LOW_ACCEPTANCE with this k
    high: float  # at HIGH_ACCEPTANCE
    best_at_low: float  # the best over every k at LOW_ACCEPTANCE

    @property
    def pays(self) -> bool:
        """Even the pessimistic acceptance leaves it faster than plain decoding."""
        return self.best_at_low >= 1.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "proposed_tokens": self.proposed_tokens,
            "cost_ratio": round(self.cost_ratio, 4),
            "batch_token_cost": round(self.batch_token_cost, 4),
            "acceptance_low": LOW_ACCEPTANCE,
            "acceptance_high": HIGH_ACCEPTANCE,
            "speedup_low": round(self.low, 2),
            "speedup_high": round(self.high, 2),
        }


def speedup_range(cost_ratio: float, batch_token_cost: float = 0.0) -> SpeedupRange:
    """The k in 1..8 that is best at 0.6 acceptance, and its speed-up at 0.5 and 0.7."""
    ks = range(1, MAX_PROPOSED_TOKENS + 1)
    k = max(ks, key=lambda n: speedup(PLANNING_ACCEPTANCE, n, cost_ratio, batch_token_cost))
    return SpeedupRange(
        proposed_tokens=k,
        cost_ratio=cost_ratio,
        batch_token_cost=batch_token_cost,
        low=speedup(LOW_ACCEPTANCE, k, cost_ratio, batch_token_cost),
        high=speedup(HIGH_ACCEPTANCE, k, cost_ratio, batch_token_cost),
        best_at_low=max(speedup(LOW_ACCEPTANCE, n, cost_ratio, batch_token_cost) for n in ks),
    )
