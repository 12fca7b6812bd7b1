"""Which files of a Hugging Face-format repository or folder bendi takes, and their checks.

Taken: config, tokenizer, chat template and safetensors files at the top level of the repository.
Never taken: pickle checkpoints (loading one can run code), Python files (remote code), subfolders
such as `original/` (other formats of the same weights), images and anything else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bendi.core.errors import InvalidModelFileError
from bendi.store.formats import PICKLE_SUFFIXES

INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILES = frozenset({
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
    "special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
    "chat_template.jinja", "chat_template.json", "preprocessor_config.json", "quant_config.json",
    "quantization_config.json", "configuration.json", INDEX_FILE,
})  # fmt: skip
OPTIONAL_FILES = frozenset({"LICENSE", "LICENSE.txt", "LICENSE.md", "README.md", "NOTICE"})
MAX_SMALL_FILE_BYTES = 64 * 1024 * 1024  # tokenizer.json of a big vocabulary is ~10 MB; config files less


@dataclass(frozen=True)
class Selection:
    """The files to take (paths in the repository), and what was left out and why."""

    taken: tuple[str, ...]
    skipped: tuple[str, ...]  # notes for the user: "pytorch_model.bin (pickle; never loaded)"


def is_weights(path: str) -> bool:
    return path.lower().endswith(".safetensors")


def select_files(paths: list[str], where: str) -> Selection:
    """Pick the files of an HF-format model from a listing; refuse one without safetensors weights."""
    taken, skipped, pickles = [], [], []
    for path in sorted(set(paths)):
        name = path.rsplit("/", 1)[-1]
        lowered = name.lower()
        if "/" in path:
            continue  # subfolders (original/, figures/) are other formats or documentation
        if lowered.endswith(PICKLE_SUFFIXES):
            pickles.append(name)
            skipped.append(f"{name} (pickle checkpoint; can run code when loaded, never fetched)")
        elif lowered.endswith(".py"):
            skipped.append(f"{name} (Python code; bendi never runs a repository's remote code)")
        elif is_weights(name) or name in CONFIG_FILES or name in OPTIONAL_FILES:
            taken.append(path)
    if not any(is_weights(p) for p in taken):
        only = f" (only pickle checkpoints: {', '.join(pickles[:3])})" if pickles else ""
        raise InvalidModelFileError(
            f"{where} has no safetensors weights{only}. bendi loads Hugging Face-format models only from "
            "safetensors, which cannot run code; pull a GGUF of this model instead, or convert it."
        )
    if "config.json" not in taken:
        raise InvalidModelFileError(f"{where} has no config.json, so it is not a Hugging Face-format model.")
    # small files first: the index is checked against the listing before any shard is fetched
    taken.sort(key=lambda p: (is_weights(p), p))
    return Selection(tuple(taken), tuple(skipped))


def git_blob_sha1(path: Path) -> str:
    """Git's id of a file (sha1 of "blob <size>\\0" + content): what Hugging Face lists for small files."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


def read_json_object(path: Path, shown_name: str) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_SMALL_FILE_BYTES:
            raise InvalidModelFileError(f"{shown_name} is larger than {MAX_SMALL_FILE_BYTES // 10**6} MB.")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelFileError(f"{shown_name} is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise InvalidModelFileError(f"{shown_name} is not a JSON object.")
    return data


def check_index(index: dict[str, Any], shard_names: set[str], where: str) -> None:
    """Every shard model.safetensors.index.json maps a tensor to must be among the files taken."""
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise InvalidModelFileError(f"{INDEX_FILE} of {where} has no weight_map.")
    listed = {str(v) for v in weight_map.values()}
    missing = sorted(listed - shard_names)
    if missing:
        raise InvalidModelFileError(
            f"{INDEX_FILE} of {where} names {len(missing)} shard(s) that are not there: "
            f"{', '.join(missing[:3])}. The repository is incomplete."
        )


def summarize(config: dict[str, Any], tokenizer_config: dict[str, Any] | None, params: int) -> dict[str, Any]:
    """The keys `bendi show` prints for GGUF models, from config.json (and tokenizer_config.json)."""
    quant = config.get("quantization_config")
    quant_name = quant.get("quant_method") if isinstance(quant, dict) else None
    dtype = config.get("torch_dtype") or config.get("dtype")
    template = (tokenizer_config or {}).get("chat_template")
    summary: dict[str, Any] = {
        "architecture": config.get("model_type"),
        "architectures": config.get("architectures"),
        "quantization": str(quant_name or dtype or "").upper() or None,
        "context_length": config.get("max_position_embeddings"),
        "layer_count": config.get("num_hidden_layers"),
        "head_count": config.get("num_attention_heads"),
        "head_count_kv": config.get("num_key_value_heads"),
        "parameter_count": params,
        "chat_template": template if isinstance(template, str) else None,
    }
    return {k: v for k, v in summary.items() if v is not None}


def tensor_elements(header: dict[str, Any]) -> int:
    """Elements in one safetensors file's tensors (from its validated header)."""
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry["shape"]:
            count *= dim
        total += count
    return total
