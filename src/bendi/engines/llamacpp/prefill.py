"""How many prompt tokens each prefilling sequence adds to the next decode step (prefill policy)."""

from __future__ import annotations

from bendi.engines.llamacpp.sequence import Sequence


def plan_prefill(
    active: list[Sequence], generating: int, batch_tokens: int, chunk: int
) -> list[tuple[Sequence, int]]:
    """Prompt tokens each prefilling sequence adds to the next step, first come first served.
    While others generate, a step adds at most `chunk` of them, so their stall stays short."""
    room = batch_tokens - generating
    budget = min(room, chunk) if generating else room
    chunks: list[tuple[Sequence, int]] = []
    for seq in active:
        if budget <= 0:
            break
        if not seq.prefilling:
            continue
        rest = len(seq.prompt_tokens) - seq.n_past
        take = min(rest, budget)
        # A short tail left for later would cost a whole extra step (another pass over the
        # weights) for a few tokens: take it now while the batch has room.
        if rest - take <= chunk // 2 and rest <= room:
            take = rest
        chunks.append((seq, take))
        budget -= take
        room -= take
    return chunks
