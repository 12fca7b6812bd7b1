"""Write small GGUF LoRA adapters for SmolLM2-135M the way llama.cpp's convert_lora_to_gguf.py does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# SmolLM2-135M: n_embd 576, n_head 9 x head_dim 64, n_head_kv 3, n_ff 1536, 30 layers.
SMOL = {"attn_q": (576, 576), "attn_k": (576, 192), "attn_v": (576, 192), "ffn_up": (576, 1536)}


def write_lora(path: Path, *, arch: str = "llama", rank: int = 8, value: float = 0.3, seed: int = 0,
               dims: dict[str, tuple[int, int]] | None = None, layers: range = range(30),
               general_type: str = "adapter") -> Path:  # fmt: skip
    """A LoRA on q/k/v/up of every layer. numpy shapes are reversed in GGUF: lora_a (r, in) -> ne [in, r],
    lora_b (out, r) -> ne [r, out], as PEFT's lora_A / lora_B weights; f32, like the script's default."""
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_type(general_type)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for layer in layers:
        for target, (n_in, n_out) in (dims or SMOL).items():
            a = (rng.standard_normal((rank, n_in)) * value).astype(np.float32)
            b = (rng.standard_normal((n_out, rank)) * value).astype(np.float32)
            writer.add_tensor(f"blk.{layer}.{target}.weight.lora_a", a)
            writer.add_tensor(f"blk.{layer}.{target}.weight.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
