"""Model files for the draft-model tests: the bundled SmolLM2 under another name (the same tokenizer)
and a copy whose vocabulary differs in one token (another tokenizer)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bendi.engines.llamacpp.draft import VOCAB_SAMPLES


def with_one_token_renamed(source: Path, dest: Path) -> Path:
    """A copy of `source` whose vocabulary differs in one token that the check samples (edited in
    place with gguf's reader, the way gguf's own metadata scripts do): another tokenizer."""
    from gguf import GGUFReader

    shutil.copyfile(source, dest)
    tokens = GGUFReader(dest, "r+").fields["tokenizer.ggml.tokens"]
    step = max(1, len(tokens.data) // VOCAB_SAMPLES)
    text = tokens.parts[tokens.data[500 * step]]
    text[:] = ord("q") if bytes(text) != b"q" * len(text) else ord("z")
    return dest


def same_model_elsewhere(source: Path, dest: Path) -> Path:
    """A copy (not a link: the draft must be another file than the model it drafts for)."""
    shutil.copyfile(source, dest)
    return dest
