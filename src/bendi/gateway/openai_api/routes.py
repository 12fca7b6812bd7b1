"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions (thin: translate, run)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from bendi.core.errors import BendiError, ModelNotFoundError, UserInputError
from bendi.engines.messages import Finished, GenerationEvent, GenerationRequest, TextDelta
from bendi.engines.protocol import Engine
from bendi.engines.reasoning import THINK_OPEN, Piece, ReasoningSplitter
from bendi.gateway.dependencies import client_id, get_services
from bendi.gateway.errors import error_payload
from bendi.gateway.openai_api.protocol import ChatCompletionRequest, CompletionRequest, usage_payload
from bendi.gateway.openai_api.translate import chunk, new_id, now_s, to_messages, to_sampling
from bendi.gateway.streaming import DONE, replay, run_until_disconnect, sse, start_generation
from bendi.services import Services
from bendi.store.resolve import installed_models

router = APIRouter(prefix="/v1", tags=["openai"])
ServicesDep = Annotated[Services, Depends(get_services)]


def _model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "bendi"}


@router.get("/models")
async def list_models(services: ServicesDep) -> dict[str, Any]:
    cards = {m.name: _model_card(m.name, int(m.modified_s)) for m in installed_models(services.paths)}
    for loaded in services.engines.loaded():
        cards.setdefault(loaded.info.model_name, _model_card(loaded.info.model_name, now_s()))
    return {"object": "list", "data": list(cards.values())}


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, services: ServicesDep) -> dict[str, Any]:
    for model in installed_models(services.paths):
        if model.name == model_id:
            return _model_card(model.name, int(model.modified_s))
    raise ModelNotFoundError(f"Model {model_id!r} is not installed. See GET /v1/models.")


async def _open(
    engine: Engine, request: GenerationRequest
) -> tuple[GenerationEvent, AsyncIterator[GenerationEvent]]:
    return await start_generation(engine.generate(request).__aiter__())


class _Channels:
    """Turns engine text into (reasoning, content) pieces according to the requested format."""

    def __init__(self, split: bool, opens_reasoning: bool) -> None:
        self._splitter = ReasoningSplitter(starts_in_reasoning=opens_reasoning) if split else None
        # Raw output of a template that opened <think> lacks the opening tag: restore it.
        self._prefix = THINK_OPEN + "\n" if (not split and opens_reasoning) else ""

    def feed(self, text: str) -> list[Piece]:
        if self._prefix:
            text, self._prefix = self._prefix + text, ""
        return self._splitter.feed(text) if self._splitter else [Piece("content", text)]

    def finish(self) -> list[Piece]:
        return self._splitter.finish() if self._splitter else []


def _merge(pieces: list[Piece]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for piece in pieces:
        merged[piece.channel] = merged.get(piece.channel, "") + piece.text
    return merged


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, services: ServicesDep
) -> dict[str, Any] | StreamingResponse:
    if body.model and body.model.startswith("kb:") or body.knowledge_base:
        raise UserInputError("Knowledge-base chat is not enabled on this server.")
    engine = await services.engines.acquire(body.model)
    rendered = engine.render_chat(to_messages(body))
    params = to_sampling(body, body.max_completion_tokens or body.max_tokens)
    generation = GenerationRequest(rendered.text, params, client_id=client_id(request))
    split = body.reasoning_format not in ("raw", "none")
    field = services.settings.reasoning_field
    model = engine.info.model_name
    completion_id, created = new_id("chatcmpl"), now_s()
    first, events = await _open(engine, generation)
    channels = _Channels(split, rendered.opens_reasoning)

    def to_delta(merged: dict[str, str]) -> dict[str, str]:
        delta: dict[str, str] = {}
        if "reasoning" in merged:
            delta[field] = merged["reasoning"]
        if "content" in merged:
            delta["content"] = merged["content"]
        return delta

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield sse(chunk("chat.completion.chunk", completion_id, model, created,
                                [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]))  # fmt: skip
                async for event in replay(first, events):
                    if isinstance(event, TextDelta):
                        delta = to_delta(_merge(channels.feed(event.text)))
                        if delta:
                            yield sse(chunk("chat.completion.chunk", completion_id, model, created,
                                            [{"index": 0, "delta": delta, "finish_reason": None}]))  # fmt: skip
                    elif isinstance(event, Finished):
                        tail = to_delta(_merge(channels.finish()))
                        yield sse(chunk("chat.completion.chunk", completion_id, model, created,
                                        [{"index": 0, "delta": tail, "finish_reason": _finish(event)}]))  # fmt: skip
                        if include_usage:
                            usage = usage_payload(event.usage.prompt_tokens, event.usage.completion_tokens,
                                                  event.usage.cached_prompt_tokens)  # fmt: skip
                            yield sse(
                                chunk("chat.completion.chunk", completion_id, model, created, [], usage)
                            )
                yield DONE
            except BendiError as exc:
                yield sse(error_payload(request.url.path, exc.message, status=exc.http_status, code=exc.code))
                yield DONE
            finally:
                with contextlib.suppress(Exception):
                    await events.aclose()  # type: ignore[attr-defined]

        return StreamingResponse(stream(), media_type="text/event-stream", headers=_stream_headers())

    async def collect() -> dict[str, Any]:
        parts: dict[str, str] = {}
        finished: Finished | None = None
        async for event in replay(first, events):
            if isinstance(event, TextDelta):
                for channel, text in _merge(channels.feed(event.text)).items():
                    parts[channel] = parts.get(channel, "") + text
            elif isinstance(event, Finished):
                finished = event
        for channel, text in _merge(channels.finish()).items():
            parts[channel] = parts.get(channel, "") + text
        assert finished is not None
        message: dict[str, Any] = {"role": "assistant", "content": parts.get("content", "")}
        if split:
            message[field] = parts.get("reasoning") or None
        usage = finished.usage
        return {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": "bendi",
            "choices": [{"index": 0, "message": message, "finish_reason": _finish(finished), "logprobs": None}],
            "usage": usage_payload(usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens),
        }  # fmt: skip

    try:
        return await run_until_disconnect(request, collect())
    finally:
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]


@router.post("/completions", response_model=None)
async def completions(
    body: CompletionRequest, request: Request, services: ServicesDep
) -> dict[str, Any] | StreamingResponse:
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise UserInputError(
            "Send exactly one prompt per request (a list of several prompts is not supported)."
        )
    if body.echo or body.suffix:
        raise UserInputError("`echo` and `suffix` are not supported.")
    engine = await services.engines.acquire(body.model)
    generation = GenerationRequest(
        prompts[0], to_sampling(body, body.max_tokens or 16), client_id=client_id(request)
    )
    model = engine.info.model_name
    completion_id, created = new_id("cmpl"), now_s()
    first, events = await _open(engine, generation)

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for event in replay(first, events):
                    if isinstance(event, TextDelta):
                        yield sse(chunk("text_completion", completion_id, model, created,
                                        [{"index": 0, "text": event.text, "logprobs": None, "finish_reason": None}]))  # fmt: skip
                    elif isinstance(event, Finished):
                        yield sse(chunk("text_completion", completion_id, model, created,
                                        [{"index": 0, "text": "", "logprobs": None, "finish_reason": _finish(event)}]))  # fmt: skip
                        if include_usage:
                            usage = usage_payload(event.usage.prompt_tokens, event.usage.completion_tokens,
                                                  event.usage.cached_prompt_tokens)  # fmt: skip
                            yield sse(chunk("text_completion", completion_id, model, created, [], usage))
                yield DONE
            except BendiError as exc:
                yield sse(error_payload(request.url.path, exc.message, status=exc.http_status, code=exc.code))
                yield DONE
            finally:
                with contextlib.suppress(Exception):
                    await events.aclose()  # type: ignore[attr-defined]

        return StreamingResponse(stream(), media_type="text/event-stream", headers=_stream_headers())

    async def collect() -> dict[str, Any]:
        texts: list[str] = []
        finished: Finished | None = None
        async for event in replay(first, events):
            if isinstance(event, TextDelta):
                texts.append(event.text)
            elif isinstance(event, Finished):
                finished = event
        assert finished is not None
        usage = finished.usage
        return {
            "id": completion_id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": "".join(texts), "logprobs": None, "finish_reason": _finish(finished)}],
            "usage": usage_payload(usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens),
        }  # fmt: skip

    try:
        return await run_until_disconnect(request, collect())
    finally:
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]


def _finish(event: Finished) -> str:
    return "length" if event.finish_reason == "length" else "stop"


def _stream_headers() -> dict[str, str]:
    # X-Accel-Buffering: nginx in front of bendi must not buffer the stream.
    return {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
