"""Ollama requests -> the internal dialect, and results -> Ollama response objects."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from bendi.core.errors import UserInputError
from bendi.engines.messages import ChatMessage, Finished, SamplingParams
from bendi.gateway.ollama_api.protocol import OllamaMessage

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
FOREVER_S = 10.0 * 365 * 24 * 3600


def keep_alive_seconds(value: str | float | int | None) -> float | None:
    """Ollama's keep_alive: "5m", "30s", "1h", seconds as a number, negative = forever, 0 = unload now."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not match:
            raise UserInputError(
                f"keep_alive {value!r} is not a duration like '5m', '30s' or a number of seconds."
            )
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    return FOREVER_S if seconds < 0 else seconds


def to_messages(messages: list[OllamaMessage], system: str | None = None) -> list[ChatMessage]:
    out = [ChatMessage("system", system)] if system else []
    for message in messages:
        if message.images:
            raise UserInputError("This model does not accept images; send text only.")
        if message.role not in ("system", "user", "assistant", "tool"):
            raise UserInputError(
                f"Unknown message role {message.role!r}: use system, user, assistant or tool."
            )
        out.append(ChatMessage(message.role, message.content, message.thinking))
    return out


def to_sampling(options: dict[str, Any], context_tokens: int) -> SamplingParams:
    defaults = SamplingParams()
    stop = options.get("stop") or ()
    try:
        num_predict = int(options.get("num_predict", -1))
        return SamplingParams(  # num_predict -1: no limit, -2: fill the context
            max_tokens=None if num_predict < 0 else max(1, num_predict),
            temperature=float(options.get("temperature", defaults.temperature)),
            top_p=float(options.get("top_p", defaults.top_p)),
            top_k=int(options.get("top_k", defaults.top_k)),
            min_p=float(options.get("min_p", defaults.min_p)),
            seed=None if options.get("seed") in (None, -1) else int(options["seed"]),
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            presence_penalty=float(options.get("presence_penalty", 0.0)),
            frequency_penalty=float(options.get("frequency_penalty", 0.0)),
            repeat_penalty=float(options.get("repeat_penalty", 1.0)),
        )
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"Invalid option value: {exc}.") from exc


def timestamp() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def final_stats(finished: Finished, load_s: float) -> dict[str, Any]:
    """Ollama's counters and durations (nanoseconds)."""
    eval_s = max(0.0, finished.total_time_s - finished.prompt_eval_time_s)
    return {
        "done": True,
        "done_reason": "length" if finished.finish_reason == "length" else "stop",
        "total_duration": int((finished.total_time_s + load_s) * 1e9),
        "load_duration": int(load_s * 1e9),
        "prompt_eval_count": finished.usage.prompt_tokens,
        "prompt_eval_duration": int(finished.prompt_eval_time_s * 1e9),
        "eval_count": finished.usage.completion_tokens,
        "eval_duration": int(eval_s * 1e9),
    }


def parameter_size(parameters: int | None) -> str:
    if not parameters:
        return ""
    return f"{parameters / 1e9:.1f}B" if parameters >= 1e9 else f"{parameters / 1e6:.0f}M"
