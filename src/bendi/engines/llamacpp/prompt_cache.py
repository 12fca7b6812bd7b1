"""Evicted prefixes kept in RAM: a slot's KV saved before another request overwrites it, restored
when a later prompt starts the same way (a conversation's next turn after its slot was reused).

With a handful of slots shared by a team, a conversation's cache is overwritten after a few other
requests, and its next turn recomputed the whole history (a 3,000-token chat: ~6 s with
SmolLM2 on 2 cores, minutes with a 7B model). A saved sequence state is its KV cells'
bytes (~23 KB a token for SmolLM2) and restores in a memory copy.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SavedPrefix:
    tokens: tuple[int, ...]
    state: bytes


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Shared leading tokens; pass two lists or two tuples (a list never equals a tuple)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the common case (a conversation's next turn) at C speed
        return n
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PromptCache:
    """LRU of saved sequence states, bounded in bytes. Used only from the scheduler thread."""

    def __init__(self, lib: Any, ctx: Any, capacity_bytes: int) -> None:
        self._lib = lib
        self._ctx = ctx
        self.capacity_bytes = capacity_bytes
        self.used_bytes = 0
        self._entries: OrderedDict[tuple[int, ...], SavedPrefix] = OrderedDict()
        self.saved = self.restored = 0

    def __len__(self) -> int:
        return len(self._entries)

    def save(self, seq_id: int, tokens: list[int]) -> None:
        """Keep `tokens` (exactly the cells of `seq_id`) before they are overwritten."""
        key = tuple(tokens)
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        size = self._lib.llama_state_seq_get_size(self._ctx, seq_id)
        if not size or size > self.capacity_bytes:
            return
        buffer = (ctypes.c_uint8 * size)()
        written = self._lib.llama_state_seq_get_data(self._ctx, buffer, size, seq_id)
        if not written:
            return
        # A saved prefix of this one is redundant: this entry serves every prompt it served.
        for other in [k for k in self._entries if len(k) <= len(key) and key[: len(k)] == k]:
            self._drop(other)
        self._entries[key] = SavedPrefix(key, ctypes.string_at(buffer, written))
        self.used_bytes += written
        self.saved += 1
        while self.used_bytes > self.capacity_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def longest_match(self, prompt: list[int]) -> tuple[SavedPrefix | None, int]:
        best, best_len = None, 0
        wanted = tuple(prompt)  # tuple against tuple: the fast whole-prefix comparison applies
        for entry in self._entries.values():
            shared = common_prefix_length(entry.tokens, wanted)
            if shared > best_len:
                best, best_len = entry, shared
        return best, best_len

    def restore(self, entry: SavedPrefix, seq_id: int) -> bool:
        """Load `entry` into the (empty) sequence `seq_id`; False if llama.cpp refused it."""
        # llama.cpp only reads it: point at the bytes themselves rather than copying them.
        buffer = ctypes.cast(ctypes.c_char_p(entry.state), ctypes.POINTER(ctypes.c_uint8))
        if not self._lib.llama_state_seq_set_data(self._ctx, buffer, len(entry.state), seq_id):
            return False
        self._entries.move_to_end(entry.tokens)
        self.restored += 1
        return True

    def _drop(self, key: tuple[int, ...]) -> None:
        self.used_bytes -= len(self._entries.pop(key).state)
