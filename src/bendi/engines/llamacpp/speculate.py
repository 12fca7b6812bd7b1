"""Prompt-lookup speculation: propose the continuation of the latest earlier occurrence of the
last few tokens (an answer quoting its retrieved articles, or else the same client's recent
answers), and the rule that verifies proposals.

Pure Python and incremental: each new token updates one dict entry per n-gram size, so a
proposal costs a few dict lookups however long the prompt is.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

NGRAM_MAX = 4  # longest suffix matched first: fewer, surer proposals
NGRAM_MIN = 2  # a single repeated token is too weak a cue (punctuation, spaces)
MATCH_REACH = 32  # how far back a match is followed to compare two sources of proposals
# Another answer's text is a weaker cue than the sequence's own history: 3 tokens at least.
ANSWER_NGRAM_MIN = 3
ANSWER_CACHE_TOKENS = 4096  # each client's recent answers kept (~30 answers of 128 tokens, ~1.5 MB)
ANSWER_CACHE_CLIENTS = 16  # clients whose answers are kept; the least recently served goes first


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
        return self.continuation(self.tokens, limit, reach=0)[1]

    def continuation(
        self, history: Sequence[int], limit: int, reach: int = MATCH_REACH
    ) -> tuple[int, list[int]]:
        """(n, up to `limit` tokens) that followed, in this index, the latest occurrence of the
        longest suffix of `history` (this index's own tokens, or another sequence's); n is how many
        tokens the match covers (followed back up to `reach`; 0: not followed), 0 when there is none."""
        if limit <= 0:
            return 0, []
        end = len(history)
        toks = self.tokens
        for n, where in zip(self._sizes, self._maps, strict=True):
            if end < n:
                continue
            start = where.get(tuple(history[end - n :]))
            if start is not None:
                # How far the match really reaches back, so two sources can be compared.
                while n < reach and start > n and end > n and toks[start - n - 1] == history[end - n - 1]:
                    n += 1
                return n, toks[start : start + limit]
        return 0, []


class AnswerCache:
    """Each client's recent answers, for lookup where they match a sequence's last tokens further back
    than its own history does: answers to questions of one kind repeat their phrasing (how an article
    is cited, how an answer closes).

    Kept per client (API key, account or address), never shared: a proposal cannot change an answer,
    but how fast an answer comes could tell whether a phrase was in someone else's recent answers."""

    def __init__(
        self, max_tokens: int = ANSWER_CACHE_TOKENS, max_clients: int = ANSWER_CACHE_CLIENTS
    ) -> None:
        self._max_tokens = max_tokens
        self._max_clients = max_clients
        self._indexes: OrderedDict[str, NgramIndex] = OrderedDict()

    def add(self, client: str, answer: Sequence[int]) -> None:
        if not answer or self._max_tokens <= 0:
            return
        index = self._indexes.pop(client, None)
        answer = list(answer[-self._max_tokens :])
        if index is None or len(index.tokens) + len(answer) > self._max_tokens:
            # Full: rebuilt from the newer half, so the index maps nothing it no longer holds.
            old = [] if index is None else index.tokens
            room = max(0, min(self._max_tokens // 2, self._max_tokens - len(answer)))
            index = NgramIndex(old[max(0, len(old) - room) :] if room else [], min_n=ANSWER_NGRAM_MIN)
        for token in answer:
            index.append(token)
        self._indexes[client] = index
        while len(self._indexes) > self._max_clients:
            self._indexes.popitem(last=False)

    def continuation(self, client: str, history: Sequence[int], limit: int) -> tuple[int, list[int]]:
        """As NgramIndex.continuation, in this client's recent answers."""
        index = self._indexes.get(client)
        return index.continuation(history, limit) if index is not None else (0, [])


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
