"""Write small valid GGUF files (one F32 tensor of random bytes) for download and import tests."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(
    data_bytes: int, *, name: str = "tiny", split: tuple[int, int] | None = None, seed: int = 0
) -> bytes:
    """A GGUF v3 file: a few metadata keys and one F32 tensor holding `data_bytes` (rounded to 4)."""
    elements = max(1, data_bytes // 4)
    kv = [
        _string("general.architecture") + struct.pack("<I", 8) + _string("llama"),
        _string("general.name") + struct.pack("<I", 8) + _string(name),
        _string("general.file_type") + struct.pack("<II", 4, 0),
        _string("llama.context_length") + struct.pack("<II", 4, 4096),
    ]
    if split is not None:
        kv += [
            _string("split.no") + struct.pack("<IH", 2, split[0]),
            _string("split.count") + struct.pack("<IH", 2, split[1]),
        ]
    tensor = _string(f"blk.{split[0] if split else 0}.weight") + struct.pack("<IQIQ", 1, elements, 0, 0)
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv)) + b"".join(kv) + tensor
    header += b"\x00" * (-len(header) % 32)
    rng = random.Random(seed)
    return header + rng.randbytes(elements * 4)


def write_gguf(path: Path, data_bytes: int, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gguf_bytes(data_bytes, **kwargs))  # type: ignore[arg-type]
    return path


def write_big_random(path: Path, size_bytes: int) -> Path:
    """A large file fast (benchmarks): random blocks repeated, written in 8 MiB chunks."""
    block = os.urandom(8 * 1024 * 1024)
    with open(path, "wb") as handle:
        left = size_bytes
        while left > 0:
            handle.write(block[: min(left, len(block))])
            left -= len(block)
    return path
