"""How long a decode step takes for each number of tokens in its batch, measured as the engine runs.

Speculation adds proposal tokens to a step; whether that pays depends on what they cost on this
machine, with this model, at this load: on a 2-core CPU a second token makes a step ~1.7x longer,
eight more tokens beside 8 streams ~1.4x. The scheduler records every step without prompt tokens;
sizes not yet seen are estimated from the nearest measured ones with a cost shape typical of CPUs.
`DecayedRate` is the tokens per second of recent steps of one kind (speculating or not, reading a
prompt).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DECAY = 0.7  # weight a size's earlier measurements keep at each new one: the load changes
OUTLIER = 2.0  # a step slower than this many times its estimate (a page fault, another process) is capped
SHAPE_EXTRA = 0.3  # unmeasured sizes: each token beyond the first adds this share of a one-token step


@dataclass
class DecayedRate:
    """Tokens per second over recent steps, as a ratio of decayed sums: each new step keeps the
    earlier ones at weight `keep`. One step's rate is noisy; an average of such rates is swayed by a
    few odd steps (1 token in a long one), a ratio of sums is not."""

    keep: float
    tokens: float = 0.0
    seconds: float = 0.0

    @property
    def measured(self) -> bool:
        return self.seconds > 0.0

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def add(self, tokens: float, seconds: float) -> None:
        self.tokens = self.tokens * self.keep + tokens
        self.seconds = self.seconds * self.keep + seconds


def _shape(tokens: int) -> float:
    return 1.0 + SHAPE_EXTRA * (tokens - 1)


@dataclass
class StepCosts:
    _sum: dict[int, float] = field(default_factory=dict)  # decayed seconds per batch size
    _weight: dict[int, float] = field(default_factory=dict)

    def record(self, tokens: int, seconds: float) -> None:
        if tokens <= 0 or seconds <= 0.0:
            return
        known = self.measured(tokens)
        if known is not None:
            seconds = min(seconds, OUTLIER * known)
        self._sum[tokens] = self._sum.get(tokens, 0.0) * DECAY + seconds
        self._weight[tokens] = self._weight.get(tokens, 0.0) * DECAY + 1.0

    def measured(self, tokens: int) -> float | None:
        weight = self._weight.get(tokens)
        return self._sum[tokens] / weight if weight else None

    def estimate(self, tokens: int) -> float:
        """Seconds for a step of `tokens` tokens: measured, else interpolated between the nearest
        measured sizes, else scaled from the nearest one by the typical shape (in units of a
        one-token step when nothing is measured yet)."""
        known = self.measured(tokens)
        if known is not None:
            return known
        below = max((size for size in self._weight if size < tokens), default=None)
        above = min((size for size in self._weight if size > tokens), default=None)
        if below is not None and above is not None:
            low, high = self.measured(below), self.measured(above)
            assert low is not None and high is not None
            return low + (high - low) * (tokens - below) / (above - below)
        nearest = below if below is not None else above
        if nearest is None:
            return _shape(tokens)
        cost = self.measured(nearest)
        assert cost is not None
        return cost * _shape(tokens) / _shape(nearest)
