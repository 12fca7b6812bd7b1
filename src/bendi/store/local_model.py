"""LocalModel: a model that can be loaded now (the store's answer to "which files run this name")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ModelFormat = Literal["gguf", "hf"]


@dataclass(frozen=True)
class AdapterRef:
    """A GGUF LoRA adapter applied on top of a base model at load time.

    `scale` multiplies the adapter's delta (0 = the base model, 1 = as trained); it is part of the
    engine's identity, so the same file at two scales is two engines.
    """

    path: Path
    scale: float = 1.0


@dataclass(frozen=True)
class LocalModel:
    """A model that can be loaded now."""

    name: str  # canonical name, e.g. "smollm2:135m" or "deepseek-r1:7b-q4_K_M"
    path: Path  # GGUF: the file to load (split GGUFs: part 1); HF format: the directory
    size_bytes: int
    source: str  # "bundled", "store", "file"
    modified_s: float = 0.0
    format: ModelFormat = "gguf"  # "hf": a Hugging Face-format directory (config.json + safetensors)
    # LoRA adapters applied at load (GGUF only); empty for a plain model. A tuple keeps the
    # dataclass hashable, and the pool keys engines on (path, adapters).
    adapters: tuple[AdapterRef, ...] = ()
