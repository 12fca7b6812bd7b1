"""OpenAI requests -> the internal dialect, and internal events -> OpenAI response objects."""

from __future__ import annotations

import time
import uuid
from typing import Any

from bendi.core.errors import UserInputError
from bendi.engines.messages import ChatMessage, SamplingParams
from bendi.gateway.openai_api.protocol import MAX_STOPS, ChatCompletionRequest, ChatMessageIn, SamplingFields


def _text_of(message: ChatMessageIn) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.type == "text":
            texts.append(part.text or "")
        else:
            raise UserInputError(
                f"Content of type {part.type!r} is not supported by this model; send text only."
            )
    return "".join(texts)


def to_messages(request: ChatCompletionRequest) -> list[ChatMessage]:
    messages = []
    for message in request.messages:
        role = "system" if message.role == "developer" else message.role
        reasoning = message.reasoning_content or message.reasoning
        messages.append(ChatMessage(role=role, content=_text_of(message), reasoning=reasoning))
    return messages


def check_n(fields: SamplingFields) -> None:
    if fields.n is not None and fields.n != 1:
        raise UserInputError(f"n={fields.n} is not supported: bendi returns one choice per request (n=1).")


def to_sampling(fields: SamplingFields, max_tokens: int | None) -> SamplingParams:
    check_n(fields)
    stop = fields.stop
    stops: tuple[str, ...] = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if len(stops) > MAX_STOPS:
        raise UserInputError(f"At most {MAX_STOPS} stop strings are supported.")
    defaults = SamplingParams()
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=defaults.temperature if fields.temperature is None else fields.temperature,
        top_p=defaults.top_p if fields.top_p is None else fields.top_p,
        top_k=defaults.top_k if fields.top_k is None else fields.top_k,
        min_p=defaults.min_p if fields.min_p is None else fields.min_p,
        seed=fields.seed,
        stop=stops,
        presence_penalty=fields.presence_penalty or 0.0,
        frequency_penalty=fields.frequency_penalty or 0.0,
        repeat_penalty=fields.repeat_penalty or 1.0,
        ignore_eos=fields.ignore_eos,
    )


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def chunk(kind: str, completion_id: str, model: str, created: int, choices: list[dict[str, Any]],
          usage: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    payload: dict[str, Any] = {"id": completion_id, "object": kind, "created": created, "model": model,
                               "system_fingerprint": "bendi", "choices": choices}  # fmt: skip
    if usage is not None:
        payload["usage"] = usage
    return payload


def now_s() -> int:
    return int(time.time())
