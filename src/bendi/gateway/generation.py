"""One admitted generation, shared by the OpenAI and Ollama translators: admission, engine,
request deadline, shutdown drain and metrics in one place."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from bendi.core.errors import BendiError, ModelNotFoundError, OverloadedError, RequestTimeoutError
from bendi.engines.messages import (
    ChatMessage,
    Finished,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    TextDelta,
)
from bendi.engines.protocol import Engine
from bendi.gateway.admission import Admission, Ticket
from bendi.gateway.audit_hooks import note, record_usage
from bendi.gateway.dependencies import client_id
from bendi.gateway.metrics import Metrics
from bendi.gateway.quotas import check_quota
from bendi.gateway.shutdown import Drain
from bendi.gateway.streaming import run_until_disconnect, start_generation
from bendi.services import Services

log = logging.getLogger("bendi.gateway")


@dataclass
class Session:
    engine: Engine
    model: str
    opens_reasoning: bool
    _first: GenerationEvent
    _rest: AsyncIterator[GenerationEvent]
    _ticket: Ticket
    _metrics: Metrics
    _drain: Drain
    _deadline_s: float
    client: str = ""
    finished: Finished | None = None
    request: Request | None = None  # for the usage ledger and the audit record
    answer: list[str] | None = None  # the answer's text, kept only when settings.audit_record_text

    async def events(self) -> AsyncIterator[GenerationEvent]:
        """The generation's events; raises a BendiError past the deadline or when the server must stop."""
        yield self._observe(self._first)
        async for event in self._rest:
            if self._drain.expired:
                raise OverloadedError("The server is shutting down and stopped this answer.", 5.0)
            if time.monotonic() > self._deadline_s:
                raise RequestTimeoutError()
            yield self._observe(event)

    def _observe(self, event: GenerationEvent) -> GenerationEvent:
        if self.answer is not None and isinstance(event, TextDelta):
            self.answer.append(event.text)
        if isinstance(event, Finished):
            self.finished = event
            self._metrics.observe_generation(self.model, event)
            usage = event.usage  # counts and timings only: the prompt and answer are never logged
            if self.request is not None:
                record_usage(self.request, self.model, usage.prompt_tokens, usage.completion_tokens)
                if self.answer is not None:
                    note(self.request, answer="".join(self.answer))
            log.info("generation finished", extra={
                "model": self.model, "client": self.client, "finish_reason": event.finish_reason,
                "prompt_tokens": usage.prompt_tokens, "cached_prompt_tokens": usage.cached_prompt_tokens,
                "completion_tokens": usage.completion_tokens, "ttft_s": round(event.time_to_first_token_s, 4) if event.first_token_timed else None,
                "total_s": round(event.total_time_s, 4)})  # fmt: skip
        return event

    async def close(self) -> None:
        """Stop the generation if it is still running and give the slot back (idempotent)."""
        try:
            with contextlib.suppress(Exception):
                await self._rest.aclose()  # type: ignore[attr-defined]
        finally:
            self._ticket.release()

    async def whole_reply(self, request: Request, reply: Coroutine[Any, Any, dict[str, Any]]) -> JSONResponse:
        """A non-streaming reply: build it (cancelled if the client leaves), then close this session.
        It holds only JSON types, so it is sent as is: FastAPI's generic encoder, which walks every
        value again, was a tenth of a replica router's CPU per request."""
        try:
            return JSONResponse(await run_until_disconnect(request, reply))
        finally:
            await self.close()


def requested_model(services: Services, model: str | None) -> str:
    """The model a client asked for, by name. A file or directory path is the operator's choice at
    start-up (`bendi serve --model PATH`), never a client's: a path that is not loaded reads as unknown."""
    name = model or services.engines.default_model_name()
    looks_like_path = name.startswith(("/", "~", ".")) or (name.endswith(".gguf") and ":" not in name)
    if looks_like_path and services.engines.get_loaded(name) is None:
        raise ModelNotFoundError(f"Model {name!r} is not installed. See GET /v1/models.")
    return name


async def open_session(
    request: Request,
    services: Services,
    model: str | None,
    params: SamplingParams,
    *,
    messages: Sequence[ChatMessage] | None = None,
    prompt: str | None = None,
    keep_alive_s: float | None = None,
    stream: bool = True,
) -> Session:
    """Admit, load, render and start a generation; errors before the first token raise here so the
    API layer can answer with a proper status (404, 400, 429, 503). `stream=False` when the client
    waits for the whole answer (GenerationRequest.stream)."""
    pool = services.engines
    local = pool.resolve(requested_model(services, model))  # unknown model: 404 before queueing
    check_quota(request, services)
    admission: Admission = request.app.state.admission
    metrics: Metrics = request.app.state.metrics
    try:
        ticket = await admission.enter(local.name, client_id(request))
    except OverloadedError as exc:
        metrics.count_rejection(local.name, exc.http_status)
        raise
    try:
        engine = await pool.acquire(local.name, keep_alive_s=keep_alive_s)
        if messages is not None:
            rendered = engine.render_chat(messages)
            text, opens = rendered.text, rendered.opens_reasoning
        else:
            text, opens = prompt or "", False
        generation = GenerationRequest(text, params, client_id=client_id(request), stream=stream)
        first, rest = await start_generation(engine.generate(generation).__aiter__())
    except BaseException:
        ticket.release()
        raise
    deadline = time.monotonic() + services.settings.request_timeout_s
    record_text = services.settings.audit_record_text
    if record_text:  # organizations that must keep what was asked (off by default)
        note(request, text=messages[-1].content if messages else prompt or "")
    return Session(engine, engine.info.model_name, opens, first, rest, ticket, metrics, request.app.state.drain,
                   deadline, client_id(request), request=request, answer=[] if record_text else None)  # fmt: skip


@contextlib.asynccontextmanager
async def admitted(request: Request, services: Services, model: str | None) -> AsyncIterator[Engine]:
    """Admission for work that is not a token stream (embeddings): the same per-model limits and
    per-client quota, on a gate of its own so embedding batches never take a chat's slot."""
    local = services.engines.resolve(requested_model(services, model))
    check_quota(request, services)
    admission: Admission = request.app.state.admission
    gate = f"{local.name} (embeddings)"
    try:
        ticket = await admission.enter(gate, client_id(request))
    except OverloadedError as exc:
        request.app.state.metrics.count_rejection(gate, exc.http_status)
        raise
    try:
        yield await services.engines.acquire(local.name)
    finally:
        ticket.release()


def error_text(exc: BaseException) -> tuple[str, int, str]:
    """A mid-stream failure as (message, status, code) for the final error event; logged here."""
    if isinstance(exc, BendiError):
        log.warning("stream ended with an error", extra={"code": exc.code, "status": exc.http_status})
        return exc.message, exc.http_status, exc.code
    log.error("stream failed", exc_info=exc)
    return "Internal error in bendi; see the server log.", 500, "internal_error"
