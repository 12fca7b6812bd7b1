"""Draft-model speculation: a small model with the target's tokenizer (DeepSeek-R1-Distill-Qwen-1.5B
for the 7B/14B/32B Qwen distills) proposes each generating sequence's next tokens greedily; the
target verifies them in its next step (speculate.verify), so answers are unchanged.

The draft keeps one KV stream per slot, like the target, and follows it lazily: before proposing,
a slot's draft cells are trimmed to the prefix they share with the target's tokens and the rest is
decoded (the prompt once, then the token or two of the last step). Nothing else has to tell the
draft about prefix copies, restores or rejected proposals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from bendi.core.errors import UserInputError
from bendi.engines.llamacpp.model import ContextConfig, LlamaModel
from bendi.engines.llamacpp.prompt_cache import common_prefix_length

VOCAB_SAMPLES = 2048  # token pieces compared between target and draft (spread over the vocabulary)
# Vocabularies padded to different sizes are one tokenizer: DeepSeek-R1-Distill-Qwen-1.5B's GGUF has
# 151,936 tokens, the 7B's 152,064 (llama.cpp's own draft check allows 128 too).
MAX_PADDING_DIFFERENCE = 128


class DraftMismatchError(UserInputError):
    """The draft model does not share the target's tokenizer."""


class Vocabulary(Protocol):
    n_vocab: int

    @property
    def end_of_generation_tokens(self) -> tuple[int, ...]: ...

    def piece(self, token: int, *, special: bool = False) -> bytes: ...


def vocabulary_mismatch(target: Vocabulary, draft: Vocabulary) -> str | None:
    """Why `draft` cannot propose tokens for `target` (None when they share a tokenizer): sizes
    within padding of each other, the same end-of-generation tokens, and the same text for tokens
    spread over the vocabulary they have in common."""
    if abs(target.n_vocab - draft.n_vocab) > MAX_PADDING_DIFFERENCE:
        return f"its vocabulary has {draft.n_vocab} tokens, the model's {target.n_vocab}"
    shared = min(target.n_vocab, draft.n_vocab)
    ends = ({t for t in model.end_of_generation_tokens if t < shared} for model in (target, draft))
    if next(ends) != next(ends):
        return "its end-of-generation tokens differ"
    step = max(1, shared // VOCAB_SAMPLES)
    for token in range(0, shared, step):
        theirs, ours = draft.piece(token, special=True), target.piece(token, special=True)
        if theirs != ours:
            return f"token {token} is {theirs!r} in it but {ours!r}"
    return None


class DraftModel:
    """The draft model's weights and context, driven by the target's scheduler thread only."""

    def __init__(self, path: Path, config: ContextConfig, target: LlamaModel) -> None:
        import llama_cpp

        self._lib = llama_cpp
        # Same slots and window as the target; no prompt cache, adapters or embeddings of its own.
        self.model = LlamaModel(path, replace(config, embeddings=False, unified_kv=False, prompt_cache_mb=0))
        reason = vocabulary_mismatch(target, self.model)
        if reason is not None:
            self.model.close()
            raise DraftMismatchError(
                f"{path.name} cannot draft for {target.path.name}: {reason}. A draft model must use the "
                "same tokenizer, e.g. DeepSeek-R1-Distill-Qwen-1.5B for the 7B, 14B and 32B Qwen distills."
            )
        self._batch_tokens = config.batch_tokens
        self._catch_up_tokens = config.prefill_chunk_tokens
        self._batch = llama_cpp.llama_batch_init(config.batch_tokens, 0, 1)
        self._greedy = llama_cpp.llama_sampler_init_greedy()
        self._tokens: list[list[int]] = [[] for _ in range(config.sequences)]  # each slot's draft KV
        self._usable = min(target.n_vocab, self.model.n_vocab)  # a padding row is never proposed
        self.decoded_tokens = 0  # draft tokens computed (prompts included), for the stats

    @property
    def memory_bytes(self) -> int:
        return self.model.size_bytes + self.model.kv_cache_bytes

    def close(self) -> None:
        self._lib.llama_batch_free(self._batch)
        self._lib.llama_sampler_free(self._greedy)
        self.model.close()

    def reset(self) -> None:
        """Forget every slot's draft cells (after a failure, or when the target cleared its own)."""
        self._lib.llama_memory_clear(self.model.memory, True)
        for tokens in self._tokens:
            tokens.clear()

    def propose(self, wants: Sequence[tuple[int, Sequence[int], int]]) -> list[list[int]]:
        """For each (slot, history, n): up to n tokens the draft expects after `history` (the slot's
        tokens and the token about to be decoded), greedy, in one batch per draft position."""
        proposals: list[list[int]] = [[] for _ in wants]
        current = self._catch_up(wants)  # the draft's first token for each want
        while current:
            step: dict[int, int] = {}
            for i, token in current.items():
                if token >= self._usable:  # a padding row of the larger vocabulary: the target has none
                    continue
                proposals[i].append(token)
                if len(proposals[i]) < wants[i][2] and token not in self.model.end_of_generation_tokens:
                    step[i] = token
            current = self._decode({i: [token] for i, token in step.items()}, wants)
        return proposals

    def _catch_up(self, wants: Sequence[tuple[int, Sequence[int], int]]) -> dict[int, int]:
        """Trim each slot's draft cells to what the target's history shares, decode the rest, and
        return the draft's next token for each want (index in `wants`) that is now level.

        At most `catch_up_tokens` are decoded per call: a sequence further behind (a new prompt of
        thousands of tokens) catches up over several steps and proposes nothing meanwhile, so the
        draft's prefill never stalls the other streams for longer than a prompt chunk would."""
        pending: dict[int, list[int]] = {}
        budget = self._catch_up_tokens
        for i, (slot, history, count) in enumerate(wants):
            if count <= 0 or not history:
                continue
            have = self._tokens[slot]
            keep = min(common_prefix_length(have, history), len(history) - 1)  # the last gives logits
            if keep < len(have):
                if not self._lib.llama_memory_seq_rm(self.model.memory, slot, keep, -1):
                    self._lib.llama_memory_seq_rm(self.model.memory, slot, -1, -1)
                    keep = 0
                del have[keep:]
            pending[i] = list(history[keep:])
            if len(pending[i]) > budget:
                pending[i] = pending[i][:budget]  # partly now, the rest in later steps
            budget -= len(pending[i])
            if budget <= 0:
                break
        level = {
            i
            for i, tokens in pending.items()
            if len(self._tokens[wants[i][0]]) + len(tokens) == len(wants[i][1])
        }
        return self._decode(pending, wants, level)

    def _decode(
        self,
        pending: dict[int, list[int]],
        wants: Sequence[tuple[int, Sequence[int], int]],
        sample: set[int] | None = None,
    ) -> dict[int, int]:
        """Decode each want's pending tokens into its slot (in slot order, a batch at a time) and
        sample the draft's greedy token after the last of them (for the wants in `sample`: all by
        default)."""
        lib, batch, ctx = self._lib, self._batch, self.model.ctx
        queue = [
            (wants[i][0], i, token)
            for i in sorted(pending, key=lambda i: wants[i][0])
            for token in pending[i]
        ]
        last = {i: len(tokens) for i, tokens in pending.items()}
        out: dict[int, int] = {}
        for start in range(0, len(queue), self._batch_tokens):
            part = queue[start : start + self._batch_tokens]
            ends: list[tuple[int, int]] = []
            for n, (slot, i, token) in enumerate(part):
                tokens = self._tokens[slot]
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, len(tokens), 1
                batch.seq_id[n][0] = slot
                tokens.append(token)
                last[i] -= 1
                wanted = last[i] == 0 and (sample is None or i in sample)
                batch.logits[n] = 1 if wanted else 0
                if wanted:
                    ends.append((i, n))
            batch.n_tokens = len(part)
            if lib.llama_decode(ctx, batch) != 0:
                self.reset()  # its cells and token lists no longer agree
                raise RuntimeError("the draft model's llama_decode failed")
            self.decoded_tokens += len(part)
            for i, n in ends:
                out[i] = int(lib.llama_sampler_sample(self._greedy, ctx, n))
        return out
