"""Tiny but valid Hugging Face-format model folders (config, tokenizer, safetensors shards + index)."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")


def write_safetensors(path: Path, tensors: dict[str, int], seed: int = 0) -> Path:
    """A valid safetensors file: F32 tensors of the given element counts, random bytes as data."""
    rng = random.Random(seed)
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, elements in tensors.items():
        header[name] = {"dtype": "F32", "shape": [elements], "data_offsets": [offset, offset + 4 * elements]}
        offset += 4 * elements
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(raw)) + raw)
        out.write(rng.randbytes(offset))
    return path


def write_hf_model(
    folder: Path, *, shard_elements: int = 200_000, extras: bool = True, seed: int = 1
) -> Path:
    """config.json, tokenizer files, two shards with an index; `extras`: also files bendi must skip."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "torch_dtype": "bfloat16",
              "max_position_embeddings": 4096, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "generation_config.json").write_text(json.dumps({"max_new_tokens": 64}))
    (folder / "tokenizer.json").write_text(
        json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}}})
    )
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    weight_map = {}
    for index, shard in enumerate(SHARDS):
        names = {
            f"layers.{index}.a": shard_elements // 2,
            f"layers.{index}.b": shard_elements - shard_elements // 2,
        }
        write_safetensors(folder / shard, names, seed=seed + index)
        weight_map.update(dict.fromkeys(names, shard))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    if extras:
        (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle: never fetched or loaded
        (folder / "modeling_evil.py").write_text("import os\nos.system('echo pwned')\n")
        (folder / "README.md").write_text("# tiny\n")
        write_safetensors(folder / "original" / "consolidated.safetensors", {"w": 16}, seed=99)
    return folder


def serve_folder(state: object, repo: str, folder: Path) -> None:
    """Put every file of `folder` (subfolders too) into a fake hub's repo."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            state.add(repo, path.relative_to(folder).as_posix(), path)  # type: ignore[attr-defined]
