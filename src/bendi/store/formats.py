"""Which model file formats the store accepts: GGUF and safetensors, validated; pickles refused."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from bendi.core.errors import InvalidModelFileError
from bendi.store.gguf import GgufInfo, read_gguf

# Pickle-based checkpoints execute code when loaded: never accepted, whatever their contents.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz")
MAX_SAFETENSORS_HEADER_BYTES = 100 * 1024 * 1024
SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
    "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


def check_model_file(path: Path) -> GgufInfo | None:
    """Validate a file by name and content: GGUF -> its info, safetensors -> None; else refuse."""
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise InvalidModelFileError(
            f"{path.name} is a pickle-based checkpoint ({suffix}), which can run code when loaded; "
            "bendi accepts only GGUF (and safetensors for vLLM). Convert it to GGUF first."
        )
    if suffix == ".gguf":
        return read_gguf(path)
    if suffix == ".safetensors":
        check_safetensors(path)
        return None
    raise InvalidModelFileError(
        f"{path.name} is not a model format bendi accepts; use a .gguf file (or .safetensors for vLLM)."
    )


def check_safetensors(path: Path) -> dict[str, Any]:
    """Validate a safetensors header (length, JSON, dtypes, shapes, offsets inside and contiguous)."""

    def bad(what: str) -> InvalidModelFileError:
        return InvalidModelFileError(f"{path.name} is not a valid safetensors file: {what}.")

    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            if size < 8:
                raise bad(f"it has only {size} bytes")
            (header_bytes,) = struct.unpack("<Q", handle.read(8))
            if header_bytes > MAX_SAFETENSORS_HEADER_BYTES or 8 + header_bytes > size:
                raise bad(f"its header claims {header_bytes} bytes")
            raw = handle.read(header_bytes)
    except OSError as exc:
        raise InvalidModelFileError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad("its header is not JSON") from exc
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    data_bytes = size - 8 - header_bytes
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise bad("__metadata__ must map strings to strings")
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES:
            raise bad(f"tensor {name!r} has an unknown dtype")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise bad(f"tensor {name!r} has an invalid shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise bad(f"tensor {name!r} has invalid data_offsets")
        begin, end = offsets
        elements = 1
        for dim in shape:
            elements *= dim
        if (
            not 0 <= begin <= end <= data_bytes
            or end - begin != elements * SAFETENSORS_DTYPES[entry["dtype"]]
        ):
            raise bad(f"tensor {name!r} bytes [{begin}, {end}) do not match its shape or the file size")
        spans.append((begin, end))
    spans.sort()
    position = 0
    for begin, end in spans:  # the format requires tensors to tile the data area without gaps
        if begin != position:
            raise bad("tensor data overlaps or leaves gaps")
        position = end
    if position != data_bytes:
        raise bad(f"tensor data covers {position} of {data_bytes} bytes")
    return header
