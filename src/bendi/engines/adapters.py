"""LoRA adapters for the in-process engine: refuse one that does not fit its base before llama.cpp sees
it, and describe the ones a loaded engine carries.

llama.cpp checks an adapter too, but only says why in its log, which bendi silences (it would garble
terminal chat); all the caller would learn is "failed". So the same checks run here first, on the
bounds-checked GGUF headers, and name what differs.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bendi.core.errors import AdapterError, InvalidModelFileError
from bendi.store.gguf import GGUF_MAGIC, _Cursor, _value, read_gguf
from bendi.store.local_model import AdapterRef, LocalModel

MAX_ADAPTERS = 8  # llama.cpp adds a pair of matmuls per adapter per layer; more is a mistake, not a plan
_SUFFIXES = (".lora_a", ".lora_b")


@dataclass(frozen=True)
class CheckedAdapter:
    """An adapter that passed every check: what the engine loads and what /api/ps shows."""

    path: Path  # resolved: the file llama.cpp opens is the file that was checked
    scale: float
    size_bytes: int
    rank: int
    alpha: float

    def describe(self) -> dict[str, Any]:
        return {"name": self.path.name, "path": str(self.path), "scale": self.scale, "rank": self.rank,
                "alpha": self.alpha, "size": self.size_bytes}  # fmt: skip


def adapter_file(ref: AdapterRef) -> Path:
    """The adapter's regular file, resolved; a missing file, a directory, a device or a FIFO (which
    would block the loader) is refused with the path the user gave."""
    raw = str(ref.path)
    if "\x00" in raw:  # llama.cpp takes a C string: a NUL would silently open another path
        raise AdapterError("An adapter path contains a NUL byte; give the path of a .gguf LoRA adapter file.")
    if not math.isfinite(ref.scale):
        raise AdapterError(
            f"The scale of adapter {ref.path.name} is {ref.scale}; give a finite number (1 = as trained)."
        )
    try:
        path = Path(os.path.expanduser(raw)).resolve(strict=True)
        mode = path.stat().st_mode
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise AdapterError(
            f"No adapter file at {raw}. Check the ADAPTER path (a GGUF LoRA adapter file)."
        ) from exc
    if not stat.S_ISREG(mode):
        raise AdapterError(
            f"The adapter path {raw} is not a regular file; give the path of a GGUF LoRA adapter file."
        )
    return path


def adapters_bytes(adapters: Sequence[AdapterRef]) -> int:
    """Bytes the adapters add to a load (their tensors are copied into memory), 0 for a missing file."""
    total = 0
    for ref in adapters:
        try:
            total += adapter_file(ref).stat().st_size
        except (AdapterError, OSError):
            continue  # the load itself reports it, with the reason
    return total


def adapters_identity(adapters: Sequence[AdapterRef]) -> tuple[tuple[str, float, int], ...]:
    """What makes two adapter lists the same engine: the file (and its version, so a re-tuned adapter
    reloads) and the scale."""
    found = []
    for ref in adapters:
        try:
            path = adapter_file(ref)
            version = path.stat().st_mtime_ns
        except (AdapterError, OSError):
            path, version = ref.path, -1
        found.append((str(path), ref.scale, version))
    return tuple(found)


def check_adapters(model: LocalModel) -> list[CheckedAdapter]:
    """Every adapter of `model`, checked against its base; raises AdapterError naming what differs."""
    if not model.adapters:
        return []
    if model.format != "gguf":
        raise AdapterError(
            f"{model.name} has LoRA adapters, which bendi applies with llama.cpp to GGUF models only; "
            "use a GGUF base model."
        )
    if len(model.adapters) > MAX_ADAPTERS:
        raise AdapterError(
            f"{model.name} has {len(model.adapters)} adapters; at most {MAX_ADAPTERS} are allowed."
        )
    base = _Base.read(model.path)
    return [_check_one(base, model.name, ref) for ref in model.adapters]


@dataclass(frozen=True)
class _Base:
    architecture: str
    shapes: dict[str, tuple[int, ...]]
    dimension_names: dict[int, str]  # 576 -> "n_embd": so a mismatch reads in the model's terms
    complete: bool  # False for a split GGUF: part 1 does not hold every tensor

    @staticmethod
    def read(path: Path) -> _Base:
        info = read_gguf(path)
        arch = info.architecture or ""
        meta = info.metadata
        names: dict[int, str] = {}
        embd, heads, kv_heads = info.embedding_length, info.head_count, info.head_count_kv
        head_dim = meta.get(f"{arch}.attention.key_length") or (embd // heads if embd and heads else None)
        for value, name in (
            (meta.get(f"{arch}.vocab_size"), "n_vocab"),
            (meta.get(f"{arch}.feed_forward_length"), "n_ff"),
            (kv_heads * head_dim if kv_heads and head_dim else None, "n_head_kv*head_dim"),
            (heads * head_dim if heads and head_dim else None, "n_head*head_dim"),
            (embd, "n_embd"),
        ):  # later names win a tie: n_embd is the clearer name when n_head*head_dim equals it
            if isinstance(value, int) and not isinstance(value, bool):
                names[value] = name
        return _Base(arch, tensor_shapes(path), names, info.split_count <= 1)

    def dims(self, values: tuple[int, int]) -> str:
        return " x ".join(
            f"{v} ({self.dimension_names[v]})" if v in self.dimension_names else str(v) for v in values
        )


def _check_one(base: _Base, model_name: str, ref: AdapterRef) -> CheckedAdapter:
    path = adapter_file(ref)
    label = ref.path.name  # as the user named it (a symlink resolves to another name)
    try:
        info = read_gguf(path)
        shapes = tensor_shapes(path)
    except InvalidModelFileError as exc:
        raise AdapterError(f"The adapter {label} cannot be used: {exc.message}") from exc
    meta = info.metadata
    kind = meta.get("general.type")
    if kind != "adapter":
        hint = " It is a model, not an adapter: use it with FROM, not ADAPTER." if kind == "model" else ""
        raise AdapterError(
            f"{label} is not a LoRA adapter (its general.type is {kind!r}, not 'adapter').{hint}"
        )
    if meta.get("adapter.type") != "lora":
        raise AdapterError(
            f"{label} is a {meta.get('adapter.type')!r} adapter; bendi applies LoRA adapters only."
        )
    arch = meta.get("general.architecture")
    if arch != base.architecture:
        raise AdapterError(
            f"The adapter {label} was made for a {arch!r} model, but {model_name} is a {base.architecture!r} "
            "model. Use an adapter trained on this base model."
        )
    rank = _check_tensors(base, model_name, label, shapes)
    alpha = meta.get("adapter.lora.alpha", 0.0)
    return CheckedAdapter(path, ref.scale, path.stat().st_size, rank,
                          float(alpha) if isinstance(alpha, int | float) else 0.0)  # fmt: skip


def _check_tensors(base: _Base, model_name: str, label: str, shapes: dict[str, tuple[int, ...]]) -> int:
    """llama-adapter.cpp's checks, phrased for people; returns the rank (the largest, if they vary)."""
    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, shape in shapes.items():
        if name.endswith("_norm.weight"):
            continue  # llama.cpp skips norm vectors in adapters (mergekit adds them)
        suffix = next((s for s in _SUFFIXES if name.endswith(s)), None)
        if suffix is None or len(shape) != 2:
            raise AdapterError(
                f"The adapter {label} has a tensor {name!r} that is not a 2-D LoRA A or B matrix."
            )
        pairs.setdefault(name[: -len(suffix)], {})[suffix] = shape
    if not pairs:
        raise AdapterError(f"The adapter {label} holds no LoRA tensors.")
    problems, rank = [], 0
    for target, pair in sorted(pairs.items()):
        if len(pair) != 2:
            raise AdapterError(
                f"The adapter {label} has only one of the two LoRA matrices for {target!r}: it is damaged."
            )
        a, b = pair[".lora_a"], pair[".lora_b"]
        known = base.shapes.get(target)
        if known is None:
            if base.complete:
                problems.append(f"{target} does not exist in the base")
            continue
        if target.endswith("token_embd.weight"):  # stored flipped, see llama.cpp's llm_build_inp_embd
            wanted, got, inner_ok = (known[0], known[1]), (b[1], a[1]), True
        else:
            wanted, got, inner_ok = (known[0], known[1]), (a[0], b[1]), a[1] == b[0]
        if not inner_ok:
            raise AdapterError(
                f"The adapter {label} has LoRA A and B of different ranks for {target!r} ({a} vs {b})."
            )
        if got != wanted:
            problems.append(
                f"{target} is {base.dims(got)} in the adapter but {base.dims(wanted)} in the base"
            )
        rank = max(rank, b[0] if not target.endswith("token_embd.weight") else a[0])
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise AdapterError(
            f"The adapter {label} does not fit {model_name}: "
            + "; ".join(problems[:3])
            + more
            + ". It was trained on a different base model; use an adapter made for this one."
        )
    return rank


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> dimensions (ggml order: ne[0] first) from a GGUF header. Call read_gguf first: it
    validates the whole file; this walk reuses its bounds-checked cursor, so a hostile header that got
    past it still cannot make it read out of bounds."""
    import mmap

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        cur = _Cursor(buf, len(buf), path.name)
        cur.need(24, "header")
        if bytes(buf[:4]) != GGUF_MAGIC:
            raise cur.fail("it does not start with the GGUF magic bytes")
        cur.pos = 8
        tensors, kv_count = cur.u64("tensor count"), cur.u64("metadata count")
        for _ in range(kv_count):
            key = cur.string("metadata key") or ""
            _value(cur, cur.u32(f"type of {key!r}"), key)
        shapes: dict[str, tuple[int, ...]] = {}
        for _ in range(tensors):
            name = cur.string("tensor name") or ""
            dims = cur.u32(f"dimension count of tensor {name!r}")
            if dims > 4:
                raise cur.fail(f"tensor {name!r} has {dims} dimensions")
            shapes[name] = tuple(cur.u64(f"dimension of tensor {name!r}") for _ in range(dims))
            cur.u32(f"type of tensor {name!r}")
            cur.u64(f"offset of tensor {name!r}")
        return shapes
