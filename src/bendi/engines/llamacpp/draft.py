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

from bendi.core.errors import UserInputError
from bendi.engines.llamacpp.model import ContextConfig, LlamaModel
from bendi.engines.llamacpp.prompt_cache import common_prefix_length

VOCAB_SAMPLES = 2048  # token pieces compared between target and draft (spread over the vocabulary)


def vocabulary_mismatch(target: LlamaModel, draft: LlamaModel) -> str | None:
    """Why `draft` cannot propose tokens for `target` (None when their vocabularies agree): the same
    size, the same end-of-generation tokens and the same text for tokens across the vocabulary."""
    if target.n_vocab != draft.n_vocab:
        return f"its vocabulary has {draft.n_vocab} tokens, the model's {target.n_vocab}"
    if set(target.end_of_generation_tokens) != set(draft.end_of_generation_tokens):
        return "its end-of-generation tokens differ"
    step = max(1, target.n_vocab // VOCAB_SAMPLES)
    for token in range(0, target.n_vocab, step):
        if target.piece(token, special=True) != draft.piece(token, special=True):
            return f"token {token} is {draft.piece(token, special=True)!r} in it but {target.piece(token, special=True)!r}"
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
            raise UserInputError(
                f"{path.name} cannot draft for {target.path.name}: {reason}. A draft model must use the "
                "same tokenizer, e.g. DeepSeek-R1-Distill-Qwen-1.5B for the 7B, 14B and 32B Qwen distills."
            )
        self._batch_tokens = config.batch_tokens
        self._batch = llama_cpp.llama_batch_init(config.batch_tokens, 0, 1)
        self._greedy = llama_cpp.llama_sampler_init_greedy()
        self._tokens: list[list[int]] = [[] for _ in range(config.sequences)]  # each slot's draft KV
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
                proposals[i].append(token)
                if len(proposals[i]) < wants[i][2] and token not in self.model.end_of_generation_tokens:
                    step[i] = token
            current = self._decode({i: [token] for i, token in step.items()}, wants)
        return proposals

    def _catch_up(self, wants: Sequence[tuple[int, Sequence[int], int]]) -> dict[int, int]:
        """Trim each slot's draft cells to what the target's history shares, decode the rest, and
        return the draft's next token for each want (index in `wants`) that asks for any."""
        pending: dict[int, list[int]] = {}
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
        return self._decode(pending, wants)

    def _decode(
        self, pending: dict[int, list[int]], wants: Sequence[tuple[int, Sequence[int], int]]
    ) -> dict[int, int]:
        """Decode each want's pending tokens into its slot (in slot order, a batch at a time) and
        sample the draft's greedy token after the last of them."""
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
                batch.logits[n] = 1 if last[i] == 0 else 0
                if last[i] == 0:
                    ends.append((i, n))
            batch.n_tokens = len(part)
            if lib.llama_decode(ctx, batch) != 0:
                self.reset()  # its cells and token lists no longer agree
                raise RuntimeError("the draft model's llama_decode failed")
            self.decoded_tokens += len(part)
            for i, n in ends:
                out[i] = int(lib.llama_sampler_sample(self._greedy, ctx, n))
        return out
