"""Prompt-lookup speculation: propose the continuation of the latest earlier occurrence of the
last few tokens (an answer quoting its retrieved articles), and the rule that verifies proposals.

Pure Python and incremental: each new token updates one dict entry per n-gram size, so a
proposal costs a few dict lookups however long the prompt is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

NGRAM_MAX = 4  # longest suffix matched first: fewer, surer proposals
NGRAM_MIN = 2  # a single repeated token is too weak a cue (punctuation, spaces)


class NgramIndex:
    """A token history (prompt, then output) and, for each n-gram size, where each n-gram last
    occurred: the index of the token that followed it."""

    def __init__(self, tokens: Sequence[int], max_n: int = NGRAM_MAX, min_n: int = NGRAM_MIN) -> None:
        self.tokens: list[int] = []
        self._sizes = tuple(range(max_n, min_n - 1, -1))
        self._maps: tuple[dict[tuple[int, ...], int], ...] = tuple({} for _ in self._sizes)
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        toks = self.tokens
        end = len(toks)
        # The n-grams ending at the current last token now have a continuation: the new token.
        # Indexed only now, so the suffix being looked up never matches itself.
        for n, where in zip(self._sizes, self._maps, strict=True):
            if end >= n:
                where[tuple(toks[end - n :])] = end
        toks.append(token)

    def propose(self, limit: int) -> list[int]:
        """Up to `limit` tokens that followed the longest suffix's latest earlier occurrence."""
        if limit <= 0:
            return []
        toks = self.tokens
        end = len(toks)
        for n, where in zip(self._sizes, self._maps, strict=True):
            if end < n:
                continue
            start = where.get(tuple(toks[end - n :]))
            if start is not None:
                return toks[start : start + limit]
        return []


def verify(sample_at: Callable[[int], int], proposals: Sequence[int], take: Callable[[int], bool]) -> int:
    """Emit the tokens the target model chooses given `proposals`; returns how many it accepted.

    `sample_at(i)` samples the target's token after the first `i` proposals (its full sampler
    chain, which also records the token for penalties); `take(token)` hands it on and says whether
    the sequence goes on. Position i is sampled only when proposals 0..i-1 were all chosen, so
    every emitted token comes from exactly the distribution plain decoding would use.

    For a deterministic proposal x this is the standard speculative-sampling rule: the sample y
    equals x with probability p(x) (accept), and when it differs, y is distributed as p with x
    removed and renormalised (the residual). At temperature 0 it is the greedy check."""
    for i, proposed in enumerate(proposals):
        token = sample_at(i)
        if not take(token):
            return i + 1 if token == proposed else i
        if token != proposed:
            return i
    take_last = sample_at(len(proposals))
    take(take_last)
    return len(proposals)
