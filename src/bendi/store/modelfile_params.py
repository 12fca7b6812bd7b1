"""Modelfile PARAMETERs: which exist, their types and ranges, and which bendi applies per request."""

from __future__ import annotations

import math
from typing import Any

from bendi.core.errors import ModelfileError

ADAPTER_SCALE = "adapter_scale"  # bendi extension: the scale of the preset's ADAPTERs (default 1.0)
MAX_STOPS = 16  # as the OpenAI API allows per request

# Applied to every request as defaults the request overrides (gateway/presets.py).
APPLIED: dict[str, type] = {
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "min_p": float,
    "num_predict": int,
    "stop": str,
    "repeat_penalty": float,
    "presence_penalty": float,
    "frequency_penalty": float,
    "seed": int,
}
# Ollama's other options: accepted so existing Modelfiles load, kept and shown, but not applied
# (the engine's context, threads and GPU layers are the server's settings, shared by every preset).
KEPT: dict[str, type] = {
    "num_ctx": int,
    "repeat_last_n": int,
    "num_keep": int,
    "typical_p": float,
    "tfs_z": float,
    "mirostat": int,
    "mirostat_tau": float,
    "mirostat_eta": float,
    "penalize_newline": bool,
    "num_batch": int,
    "num_gpu": int,
    "main_gpu": int,
    "num_thread": int,
    "num_gqa": int,
    "use_mmap": bool,
    "use_mlock": bool,
    "numa": bool,
    "low_vram": bool,
    "f16_kv": bool,
    "vocab_only": bool,
    "logits_all": bool,
}
TYPES: dict[str, type] = {**APPLIED, **KEPT, ADAPTER_SCALE: float}
# (low, high, low inclusive): the ranges the OpenAI API accepts, so a preset never makes a request invalid.
RANGES: dict[str, tuple[float, float, bool]] = {
    "temperature": (0.0, 2.0, True),
    "top_p": (0.0, 1.0, False),
    "min_p": (0.0, 1.0, True),
    "top_k": (0, 1_000_000, True),
    "repeat_penalty": (0.0, 10.0, False),
    "presence_penalty": (-2.0, 2.0, True),
    "frequency_penalty": (-2.0, 2.0, True),
    "num_predict": (-2, 10_000_000, True),
    "num_ctx": (1, 10_000_000, True),
    ADAPTER_SCALE: (-10.0, 10.0, True),
}


def _convert(key: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if kind is int:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError("expected a whole number")
        try:
            return int(str(raw).strip()) if not isinstance(raw, int | float) else int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
    if kind is float:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        try:
            value = float(str(raw).strip()) if not isinstance(raw, int | float) else float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    if not isinstance(raw, str) or not raw:
        raise ValueError("expected a non-empty string")
    return raw


def check_parameter(key: str, raw: Any, line: int | None = None) -> tuple[str, Any]:
    """(name, typed value) of one PARAMETER, or a ModelfileError naming the parameter (and line)."""
    name = key.strip().lower()
    kind = TYPES.get(name)
    if kind is None:
        raise ModelfileError(f"unknown PARAMETER {key!r}. bendi knows: {', '.join(sorted(TYPES))}.", line)
    try:
        value = _convert(name, raw, kind)
    except (TypeError, ValueError) as exc:
        raise ModelfileError(f"PARAMETER {name} {str(raw)[:40]!r}: {exc}.", line) from None
    if name in RANGES:
        low, high, low_inclusive = RANGES[name]
        if value > high or value < low or (value == low and not low_inclusive):
            bound = "from" if low_inclusive else "above"
            raise ModelfileError(f"PARAMETER {name} {value} is out of range ({bound} {low} to {high}).", line)
    return name, value


def check_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """A parameters mapping from the JSON API (`stop` a string or a list) checked like PARAMETER lines."""
    checked: dict[str, Any] = {}
    for key, raw in parameters.items():
        if key.strip().lower() == "stop":
            stops = [raw] if isinstance(raw, str) else raw
            if not isinstance(stops, list):
                raise ModelfileError("parameter stop must be a string or a list of strings.")
            checked["stop"] = [check_parameter("stop", s)[1] for s in stops]
        else:
            name, value = check_parameter(key, raw)
            checked[name] = value
    if len(checked.get("stop", [])) > MAX_STOPS:
        raise ModelfileError(f"at most {MAX_STOPS} stop strings are supported.")
    return checked


def not_applied(parameters: dict[str, Any]) -> list[str]:
    """The parameters a preset keeps but bendi does not apply per request (for a note to the user)."""
    return sorted(k for k in parameters if k in KEPT)


def format_value(value: Any) -> str:
    """A value as a Modelfile line writes it (strings quoted with JSON escapes)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
