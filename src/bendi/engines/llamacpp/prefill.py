"""How many prompt tokens each prefilling sequence adds to the next decode step (prefill policy)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bendi.engines.llamacpp.sequence import Sequence
from bendi.engines.llamacpp.step_costs import DecayedRate

PACE_DECAY = 0.7  # weight the earlier measurements keep at each new one
CHUNK_ALIGN = 64  # llama.cpp's CPU flash attention reads a sequence's queries in tiles of 64


@dataclass
class PrefillPace:
    """Sizes the prompt chunk a step takes while other streams generate, from how fast this engine
    has read prompts. Each such step also makes one token for every running stream, which costs a
    pass over the weights: in small chunks those passes add up (a 2.5k-token prompt beside 7
    streams on Gemma 3 270M: 20 steps of 128 tokens took 1.31x its idle time), while the running
    streams only need their pauses kept short. So a chunk is what the engine reads in about
    `step_s` seconds (in multiples of 64 tokens), never less than `floor`; `step_s` 0 keeps
    chunks of `floor`."""

    step_s: float
    floor: int
    _read: DecayedRate = field(default_factory=lambda: DecayedRate(keep=PACE_DECAY))

    def record(self, tokens: int, seconds: float) -> None:
        """A step that read `tokens` prompt tokens (beside any running streams') in `seconds`."""
        if tokens > 0 and seconds > 0.0:
            self._read.add(tokens, seconds)

    def holds_streams(self, since_their_token_s: float) -> bool:
        """Whether a step that reads a prompt leaves the running streams out, because they got a
        token less than `step_s` ago. Their tokens in a step cost a pass over the weights (7
        streams on Gemma 3 270M's 262k-token output layer: ~50 ms of a ~0.65 s step), so they ride
        about every `step_s` rather than in every step: the prompt's first token comes sooner and
        a stream's pause stays within about two steps (llama-server stops them for the whole
        prompt)."""
        return self.step_s > 0.0 and since_their_token_s < self.step_s

    def chunk(self) -> int:
        if self.step_s <= 0.0 or not self._read.measured:
            return self.floor
        paced = int(self._read.rate * self.step_s) // CHUNK_ALIGN * CHUNK_ALIGN
        return max(self.floor, paced)


def plan_prefill(
    active: list[Sequence], generating: int, batch_tokens: int, chunk: int, *, streams_held: bool = False
) -> list[tuple[Sequence, int]]:
    """Prompt tokens each prefilling sequence adds to the next step, first come first served.
    While others generate (`generating` tokens in this step, or streams held out of it), a step
    adds at most `chunk` of them, so their stall stays short."""
    room = batch_tokens - generating
    budget = min(room, chunk) if generating or streams_held else room
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
