"""EngineStats: the counters /metrics shows for a loaded model, whichever engine runs it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineStats:
    active_sequences: int
    waiting_sequences: int  # queued for a free slot
    prompt_tokens_total: int
    prompt_tokens_cached: int  # reused from the prefix cache instead of recomputed
    generated_tokens_total: int
    decode_steps: int = 0
    slots: int = 0
    prompt_cache_entries: int = 0  # prefixes saved in RAM (llama.cpp)
    prompt_cache_bytes: int = 0
    prompt_cache_restores: int = 0
    restarts_total: int = 0  # supervised server engines restarted after a crash
    speculative_proposed_tokens: int = 0  # proposals verified by speculative decoding (llama.cpp)
    speculative_accepted_tokens: int = 0  # of those, tokens the model chose too

    @property
    def speculative_acceptance_ratio(self) -> float:
        proposed = self.speculative_proposed_tokens
        return self.speculative_accepted_tokens / proposed if proposed else 0.0

    @property
    def prompt_tokens_processed(self) -> int:
        return self.prompt_tokens_total - self.prompt_tokens_cached

    @property
    def prefix_cache_hit_ratio(self) -> float:
        return self.prompt_tokens_cached / self.prompt_tokens_total if self.prompt_tokens_total else 0.0
