"""GGUF header reader for hostile files: bounds-checks everything, returns a metadata summary.

A model file comes from the internet or a USB disk and ends up in llama.cpp, which trusts its
header. Before a file is registered or loaded we check the magic, version, counts, every string and
array length, every value and tensor type, and that each tensor's bytes (computed from its
dimensions and type) lie aligned inside the file. Nothing is allocated from a length we have not
checked against the bytes that are actually there; the file is mmapped, not read.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bendi.core.errors import InvalidModelFileError

GGUF_MAGIC = b"GGUF"
MAX_TENSORS = 1_000_000  # DeepSeek-V3 has ~1.1k tensors per layer group; ample headroom
MAX_KV = 100_000
MAX_STRING_BYTES = 64 * 1024 * 1024
MAX_KEY_BYTES = 65_536
MAX_TENSOR_NAME_BYTES = 64  # GGML_MAX_NAME
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ARRAY_DEPTH = 2
KEEP_ARRAY_ITEMS = 16  # arrays longer than this (token lists) are checked but not kept

# value types: id -> (struct format or None for string/array, byte size)
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}  # fmt: skip
_STRING, _ARRAY = 8, 9

# ggml tensor types: id -> (name, elements per block, bytes per block); from ggml.h / ggml-common.h
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18), 42: ("Q2_0", 64, 18),
}  # fmt: skip

# general.file_type (llama_ftype) -> the quantization name users know
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
    39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
}  # fmt: skip


@dataclass(frozen=True)
class GgufInfo:
    """What `bendi show` and the advisor need from a validated GGUF file."""

    version: int
    tensor_count: int
    parameter_count: int  # elements over all tensors in this file
    architecture: str | None
    model_name: str | None
    quantization: str | None
    context_length: int | None
    layer_count: int | None
    head_count: int | None
    head_count_kv: int | None
    embedding_length: int | None
    chat_template: str | None
    license: str | None
    split_count: int
    data_bytes: int
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)  # scalars and short arrays

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary for manifests and APIs (no long arrays, template kept)."""
        return {
            "architecture": self.architecture,
            "name": self.model_name,
            "parameter_count": self.parameter_count,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "layer_count": self.layer_count,
            "head_count": self.head_count,
            "head_count_kv": self.head_count_kv,
            "embedding_length": self.embedding_length,
            "chat_template": self.chat_template,
            "license": self.license,
            "split_count": self.split_count,
            "tensor_count": self.tensor_count,
            "gguf_version": self.version,
        }


class _Cursor:
    """Reads little-endian values from a buffer, refusing to step past its end."""

    def __init__(self, buf: Any, size: int, where: str) -> None:
        self.buf, self.size, self.pos, self.where = buf, size, 0, where

    def fail(self, what: str) -> InvalidModelFileError:
        return InvalidModelFileError(
            f"{self.where} is not a valid GGUF file: {what} (at byte {self.pos}). "
            "The download may be damaged: delete it and pull or copy it again."
        )

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"{what} runs past the end of the file ({self.size} bytes)")

    def scalar(self, fmt: str, size: int, what: str) -> Any:
        self.need(size, what)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar("<I", 4, what))

    def u64(self, what: str) -> int:
        return int(self.scalar("<Q", 8, what))

    def string(self, what: str, limit: int = MAX_STRING_BYTES, keep: bool = True) -> str | None:
        length = self.u64(f"length of {what}")
        if length > limit:
            raise self.fail(f"{what} claims {length} bytes; the limit is {limit}")
        self.need(length, what)
        raw = bytes(self.buf[self.pos : self.pos + length]) if keep else None
        self.pos += length
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not valid UTF-8") from exc


def _value(cur: _Cursor, vtype: int, key: str, depth: int = 0) -> Any:
    if vtype in _SCALARS:
        fmt, size = _SCALARS[vtype]
        return cur.scalar(fmt, size, f"value of {key!r}")
    if vtype == _STRING:
        return cur.string(f"string value of {key!r}")
    if vtype == _ARRAY:
        if depth >= MAX_ARRAY_DEPTH:
            raise cur.fail(f"{key!r} nests arrays deeper than {MAX_ARRAY_DEPTH}")
        etype = cur.u32(f"array type of {key!r}")
        count = cur.u64(f"array length of {key!r}")
        if etype in _SCALARS:
            size = _SCALARS[etype][1]
            cur.need(count * size, f"array {key!r} of {count} items")
            if count <= KEEP_ARRAY_ITEMS:
                fmt = "<" + _SCALARS[etype][0][1] * count
                items = list(struct.unpack_from(fmt, cur.buf, cur.pos))
                cur.pos += count * size
                return items
            cur.pos += count * size
            return {"array_length": count}
        if etype not in (_STRING, _ARRAY):
            raise cur.fail(f"array {key!r} has unknown element type {etype}")
        # each element takes at least 8 bytes (its length), so a bogus count fails before looping
        cur.need(count * 8, f"array {key!r} of {count} items")
        keep = count <= KEEP_ARRAY_ITEMS
        kept = []
        for _ in range(count):
            if etype == _STRING:
                item = cur.string(f"item of {key!r}", keep=keep)
            else:
                item = _value(cur, _ARRAY, key, depth + 1)
            if keep:
                kept.append(item)
        return kept if keep else {"array_length": count}
    raise cur.fail(f"{key!r} has unknown value type {vtype}")


def read_gguf(path: Path) -> GgufInfo:
    """Validate `path` as GGUF and summarise it; raises InvalidModelFileError, never crashes."""
    where = f"{path.name}"
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            if size < 24:
                raise InvalidModelFileError(f"{where} is not a valid GGUF file: it has only {size} bytes.")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(_Cursor(buf, size, where))
    except OSError as exc:
        raise InvalidModelFileError(f"Cannot read {path}: {exc.strerror or exc}.") from exc


def _parse(cur: _Cursor) -> GgufInfo:
    cur.need(4, "magic")
    if bytes(cur.buf[0:4]) != GGUF_MAGIC:
        raise cur.fail("it does not start with the GGUF magic bytes")
    cur.pos = 4
    version = cur.u32("version")
    if version not in (2, 3):
        raise cur.fail(f"GGUF version {version} is not supported (2 and 3 are)")
    tensor_count = cur.u64("tensor count")
    kv_count = cur.u64("metadata count")
    if tensor_count > MAX_TENSORS or tensor_count > cur.size // 24:
        raise cur.fail(f"it claims {tensor_count} tensors")
    if kv_count > MAX_KV or kv_count > cur.size // 12:
        raise cur.fail(f"it claims {kv_count} metadata entries")

    meta: dict[str, Any] = {}
    for _ in range(kv_count):
        key = cur.string("metadata key", limit=MAX_KEY_BYTES)
        assert key is not None
        vtype = cur.u32(f"type of {key!r}")
        if key in meta:
            raise cur.fail(f"metadata key {key!r} appears twice")
        meta[key] = _value(cur, vtype, key)

    alignment = meta.get("general.alignment", 32)
    if (
        not isinstance(alignment, int)
        or isinstance(alignment, bool)
        or alignment <= 0
        or alignment & (alignment - 1)
    ):
        raise cur.fail(f"general.alignment {alignment!r} is not a power of two")

    tensors: list[tuple[str, int, int]] = []  # name, offset, bytes
    names: set[str] = set()
    parameter_count = 0
    for _ in range(tensor_count):
        name = cur.string("tensor name", limit=MAX_TENSOR_NAME_BYTES)
        assert name is not None
        if name in names:
            raise cur.fail(f"tensor {name!r} appears twice")
        names.add(name)
        n_dims = cur.u32(f"dimension count of tensor {name!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise cur.fail(f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
        dims = [cur.u64(f"dimension of tensor {name!r}") for _ in range(n_dims)]
        elements = 1
        for dim in dims:
            if dim == 0 or dim >= 2**62:
                raise cur.fail(f"tensor {name!r} has dimension {dim}")
            elements *= dim
            if elements >= 2**62:
                raise cur.fail(f"tensor {name!r} is impossibly large ({dims})")
        ttype = cur.u32(f"type of tensor {name!r}")
        if ttype not in GGML_TYPES:
            raise cur.fail(f"tensor {name!r} has unknown ggml type {ttype}")
        type_name, block, block_bytes = GGML_TYPES[ttype]
        if dims[0] % block:
            raise cur.fail(
                f"tensor {name!r} row of {dims[0]} is not a multiple of the {type_name} block ({block})"
            )
        offset = cur.u64(f"offset of tensor {name!r}")
        if offset % alignment:
            raise cur.fail(f"tensor {name!r} offset {offset} is not aligned to {alignment}")
        tensors.append((name, offset, elements // block * block_bytes))
        parameter_count += elements

    data_start = (cur.pos + alignment - 1) // alignment * alignment
    data_bytes = 0
    for name, offset, nbytes in tensors:
        end = data_start + offset + nbytes
        if end > cur.size:
            raise cur.fail(
                f"tensor {name!r} ({nbytes} bytes at offset {offset}) ends at byte {end}, "
                f"past the end of the file ({cur.size} bytes): the file is truncated"
            )
        data_bytes += nbytes
    return _summarise(meta, version, tensor_count, parameter_count, data_bytes)


def _summarise(meta: dict[str, Any], version: int, tensors: int, params: int, data_bytes: int) -> GgufInfo:
    arch = meta.get("general.architecture")
    arch = arch if isinstance(arch, str) else None

    def arch_int(suffix: str) -> int | None:
        value = meta.get(f"{arch}.{suffix}") if arch else None
        if isinstance(value, list):  # per-layer head counts (some architectures): report the max
            value = max((v for v in value if isinstance(v, int)), default=None)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def text(key: str) -> str | None:
        value = meta.get(key)
        return value if isinstance(value, str) else None

    file_type = meta.get("general.file_type")
    quant = FILE_TYPES.get(file_type) if isinstance(file_type, int) else None
    split_count = meta.get("split.count", 1)
    kept = {k: v for k, v in meta.items() if not isinstance(v, dict) and k != "tokenizer.chat_template"}
    return GgufInfo(
        version=version,
        tensor_count=tensors,
        parameter_count=params,
        architecture=arch,
        model_name=text("general.name"),
        quantization=quant,
        context_length=arch_int("context_length"),
        layer_count=arch_int("block_count"),
        head_count=arch_int("attention.head_count"),
        head_count_kv=arch_int("attention.head_count_kv"),
        embedding_length=arch_int("embedding_length"),
        chat_template=text("tokenizer.chat_template"),
        license=text("general.license"),
        split_count=split_count if isinstance(split_count, int) and split_count > 0 else 1,
        data_bytes=data_bytes,
        metadata=kept,
    )
