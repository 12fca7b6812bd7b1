"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions (thin: translate, run)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from bendi.core.errors import ModelNotFoundError, UserInputError
from bendi.engines.messages import Finished, TextDelta
from bendi.engines.reasoning import THINK_OPEN, Piece, ReasoningSplitter
from bendi.gateway.dependencies import get_services
from bendi.gateway.errors import error_payload
from bendi.gateway.generation import Session, error_text, open_session
from bendi.gateway.openai_api.protocol import ChatCompletionRequest, CompletionRequest, usage_payload
from bendi.gateway.openai_api.translate import chunk, new_id, now_s, to_messages, to_sampling
from bendi.gateway.presets import apply_openai, preset_for
from bendi.gateway.streaming import (
    DONE,
    GuardedStreamingResponse,
    run_until_disconnect,
    sse,
    stop_disconnect_watch,
)
from bendi.services import Services
from bendi.store.presets import list_presets
from bendi.store.resolve import installed_models

router = APIRouter(prefix="/v1", tags=["openai"])
ServicesDep = Annotated[Services, Depends(get_services)]
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # proxies must not buffer


def _model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "bendi"}


@router.get("/models")
async def list_models(services: ServicesDep) -> dict[str, Any]:
    cards = {m.name: _model_card(m.name, int(m.modified_s)) for m in installed_models(services.paths)}
    for loaded in services.engines.loaded():
        cards.setdefault(loaded.info.model_name, _model_card(loaded.info.model_name, now_s()))
    for name in services.engines.upstream_models():  # served by replicas on other servers
        cards.setdefault(name, _model_card(name, now_s()))
    for preset in list_presets(services.paths):
        cards.setdefault(preset.name, _model_card(preset.name, int(preset.created_s)))
    return {"object": "list", "data": list(cards.values())}


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, services: ServicesDep) -> dict[str, Any]:
    for model in installed_models(services.paths):
        if model.name == model_id:
            return _model_card(model.name, int(model.modified_s))
    if model_id in services.engines.upstream_models():
        return _model_card(model_id, now_s())
    preset = preset_for(services, model_id)
    if preset is not None:
        return _model_card(preset.name, int(preset.created_s))
    raise ModelNotFoundError(f"Model {model_id!r} is not installed. See GET /v1/models.")


class _Channels:
    """Turns engine text into reasoning and content pieces according to the requested format."""

    def __init__(self, split: bool, opens_reasoning: bool) -> None:
        self._splitter = ReasoningSplitter(starts_in_reasoning=opens_reasoning) if split else None
        # Raw output of a template that opened <think> lacks the opening tag: restore it.
        self._prefix = THINK_OPEN + "\n" if (not split and opens_reasoning) else ""

    def feed(self, text: str) -> dict[str, str]:
        if self._prefix:
            text, self._prefix = self._prefix + text, ""
        return _merge(self._splitter.feed(text) if self._splitter else [Piece("content", text)])

    def finish(self) -> dict[str, str]:
        return _merge(self._splitter.finish() if self._splitter else [])


def _merge(pieces: list[Piece]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for piece in pieces:
        merged[piece.channel] = merged.get(piece.channel, "") + piece.text
    return merged


def _finish_reason(event: Finished) -> str:
    return "length" if event.finish_reason == "length" else "stop"


def _usage(event: Finished) -> dict[str, Any]:
    return usage_payload(
        event.usage.prompt_tokens, event.usage.completion_tokens, event.usage.cached_prompt_tokens
    )


def _stream(
    session: Session, request: Request, services: Services, body: AsyncIterator[bytes]
) -> GuardedStreamingResponse:
    return GuardedStreamingResponse(
        body, send_timeout_s=services.settings.stalled_reader_timeout_s, on_close=session.close,
        media_type="text/event-stream", headers=STREAM_HEADERS,
    )  # fmt: skip


async def _error_events(request: Request, exc: BaseException) -> AsyncIterator[bytes]:
    message, status, code = error_text(exc)
    yield sse(error_payload(request.url.path, message, status=status, code=code))
    yield DONE


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request, services: ServicesDep) -> Any:
    body = apply_openai(services, body)  # a preset's system, turns, parameters, knowledge base
    if (body.model and body.model.startswith("kb:")) or body.knowledge_base:
        from bendi.gateway.knowledge_api.chat import openai_kb_chat

        return await openai_kb_chat(body, request, services)
    params = to_sampling(body, body.max_completion_tokens or body.max_tokens)
    # A client that leaves while queued or during prompt processing must not start a generation.
    session = await run_until_disconnect(
        request,
        open_session(
            request, services, body.model, params, messages=to_messages(body), stream=bool(body.stream)
        ),
        keep_watching=not body.stream,
    )
    split = body.reasoning_format not in ("raw", "none")
    field = services.settings.reasoning_field
    completion_id, created, model = new_id("chatcmpl"), now_s(), session.model
    channels = _Channels(split, session.opens_reasoning)

    def delta_of(merged: dict[str, str]) -> dict[str, str]:
        delta: dict[str, str] = {}
        if "reasoning" in merged:
            delta[field] = merged["reasoning"]
        if "content" in merged:
            delta["content"] = merged["content"]
        return delta

    def frame(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        return sse(chunk("chat.completion.chunk", completion_id, model, created, choices, usage))

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def stream() -> AsyncIterator[bytes]:
            closing = b""
            yield frame([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            try:
                async for event in session.events():
                    if isinstance(event, TextDelta):
                        delta = delta_of(channels.feed(event.text))
                        if delta:
                            yield frame([{"index": 0, "delta": delta, "finish_reason": None}])
                    elif isinstance(event, Finished):
                        tail = delta_of(channels.finish())
                        closing = frame([{"index": 0, "delta": tail, "finish_reason": _finish_reason(event)}])
                        if include_usage:
                            closing += frame([], _usage(event))
                # The closing frames leave in one write: the client (or a bendi router in front of
                # this server) wakes once for them instead of three times.
                yield closing + DONE
            except Exception as exc:  # mid-stream failure: the status is already 200, say it in the stream
                async for line in _error_events(request, exc):
                    yield line

        stop_disconnect_watch(request)  # the streaming response listens for the disconnect itself
        return _stream(session, request, services, stream())

    async def collect() -> dict[str, Any]:
        parts: dict[str, str] = {}
        async for event in session.events():
            if isinstance(event, TextDelta):
                for channel, text in channels.feed(event.text).items():
                    parts[channel] = parts.get(channel, "") + text
        for channel, text in channels.finish().items():
            parts[channel] = parts.get(channel, "") + text
        finished = session.finished
        assert finished is not None
        message: dict[str, Any] = {"role": "assistant", "content": parts.get("content", "")}
        if split:
            message[field] = parts.get("reasoning") or None
        return {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": "bendi",
            "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(finished), "logprobs": None}],
            "usage": _usage(finished),
        }  # fmt: skip

    return await session.whole_reply(request, collect())


@router.post("/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request, services: ServicesDep) -> Any:
    body = apply_openai(services, body)  # a preset's parameters
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise UserInputError(
            "Send exactly one prompt per request (a list of several prompts is not supported)."
        )
    if body.echo or body.suffix:
        raise UserInputError("`echo` and `suffix` are not supported.")
    session = await run_until_disconnect(
        request,
        open_session(
            request,
            services,
            body.model,
            to_sampling(body, body.max_tokens or 16),
            prompt=prompts[0],
            stream=bool(body.stream),
        ),  # fmt: skip
        keep_watching=not body.stream,
    )
    completion_id, created, model = new_id("cmpl"), now_s(), session.model

    def frame(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        return sse(chunk("text_completion", completion_id, model, created, choices, usage))

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def stream() -> AsyncIterator[bytes]:
            closing = b""
            try:
                async for event in session.events():
                    if isinstance(event, TextDelta):
                        yield frame(
                            [{"index": 0, "text": event.text, "logprobs": None, "finish_reason": None}]
                        )
                    elif isinstance(event, Finished):
                        closing = frame([{"index": 0, "text": "", "logprobs": None,
                                          "finish_reason": _finish_reason(event)}])  # fmt: skip
                        if include_usage:
                            closing += frame([], _usage(event))
                yield closing + DONE  # in one write, as for chats
            except Exception as exc:
                async for line in _error_events(request, exc):
                    yield line

        stop_disconnect_watch(request)  # the streaming response listens for the disconnect itself
        return _stream(session, request, services, stream())

    async def collect() -> dict[str, Any]:
        texts = [event.text async for event in session.events() if isinstance(event, TextDelta)]
        finished = session.finished
        assert finished is not None
        return {
            "id": completion_id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": "".join(texts), "logprobs": None, "finish_reason": _finish_reason(finished)}],
            "usage": _usage(finished),
        }  # fmt: skip

    return await session.whole_reply(request, collect())
