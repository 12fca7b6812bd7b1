"""Chat with a knowledge base through any API: a grounded turn (retrieve, refuse or build the prompt,
admit and start the generation) and its OpenAI, Ollama and /ask renderings, with citations."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from bendi.core.errors import UserInputError
from bendi.engines.messages import ChatMessage, Finished, SamplingParams, TextDelta, Usage
from bendi.engines.protocol import Engine
from bendi.engines.reasoning import ReasoningSplitter
from bendi.gateway.audit_hooks import note
from bendi.gateway.dependencies import readable_kbs
from bendi.gateway.errors import error_payload
from bendi.gateway.generation import Session, error_text, open_session, requested_model
from bendi.gateway.openai_api.protocol import usage_payload
from bendi.gateway.streaming import DONE, GuardedStreamingResponse, ndjson, run_until_disconnect, sse
from bendi.knowledge.answer import GroundedPrompt, ground, refusal_text
from bendi.services import Services

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class GroundedTurn:
    grounded: GroundedPrompt
    question: str
    model: str
    session: Session | None  # None when refused: no model was called

    @property
    def citations(self) -> list[dict[str, object]]:
        return [c.to_json() for c in self.grounded.citations]

    @property
    def refusal(self) -> str:
        return refusal_text(self.question)

    async def pieces(self) -> AsyncIterator[tuple[str, str]]:
        """("reasoning" | "content", text) pieces, then ("done", "")."""
        if self.session is None:
            yield "content", self.refusal
            yield "done", ""
            return
        splitter = ReasoningSplitter(starts_in_reasoning=self.session.opens_reasoning)
        async for event in self.session.events():
            if isinstance(event, TextDelta):
                for piece in splitter.feed(event.text):
                    yield piece.channel, piece.text
        for piece in splitter.finish():
            yield piece.channel, piece.text
        yield "done", ""

    @property
    def finished(self) -> Finished | None:
        return self.session.finished if self.session else None

    def usage(self) -> dict[str, Any]:
        """OpenAI's usage object, exactly as plain models report it; a refusal called no model: zeros."""
        used = self.finished.usage if self.finished else Usage(0, 0)
        return usage_payload(used.prompt_tokens, used.completion_tokens, used.cached_prompt_tokens)

    @property
    def finish_reason(self) -> str:
        return "length" if self.finished and self.finished.finish_reason == "length" else "stop"

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def split_question(messages: Sequence[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """The last user message is the question; earlier user/assistant turns are kept as history."""
    for position in range(len(messages) - 1, -1, -1):
        if messages[position].role == "user":
            history = [m for m in messages[:position] if m.role in ("user", "assistant")]
            return messages[position].content, history
    raise UserInputError("A knowledge-base chat needs a user message with the question.")


def kb_and_model(model: str | None, knowledge_base: str | None) -> tuple[str, str | None]:
    """`model: "kb:NAME"` answers with the default chat model; any model + `knowledge_base` works too."""
    if model and model.startswith("kb:"):
        return (knowledge_base or model[3:]), None
    if not knowledge_base:
        raise UserInputError(
            "Say which knowledge base to use: model 'kb:NAME' or the field 'knowledge_base'."
        )
    return knowledge_base, model or None


async def open_grounded_turn(request: Request, services: Services, *, knowledge_base: str, model: str | None,
                             messages: Sequence[ChatMessage], top_k: int = 5, max_tokens: int | None = None,
                             params: SamplingParams | None = None, document_ids: Sequence[int] | None = None,
                             ) -> GroundedTurn:  # fmt: skip
    # The caller's readable scope, from the request: every kb:NAME chat (OpenAI, Ollama, /ask) passes here.
    kb = services.knowledge.get(knowledge_base, readable_kbs(request))
    question, history = split_question(messages)
    pool = services.engines
    name = requested_model(services, model)

    async def acquire() -> Engine:
        return await pool.acquire(name)

    grounded, engine = await ground(kb, question, acquire, top_k=top_k, max_tokens=max_tokens or 512,
                                    min_score=services.settings.kb_min_similarity, history=history,
                                    document_ids=document_ids)  # fmt: skip
    note(request, kb=kb.name, documents=[c.hit.file for c in grounded.citations], text=question)
    if grounded.refused or engine is None:
        return GroundedTurn(grounded, question, name, None)
    base = params or SamplingParams(temperature=0.2)
    sampling = SamplingParams(**{**base.__dict__, "max_tokens": grounded.answer_tokens})
    session = await open_session(
        request, services, engine.info.model_name, sampling, messages=grounded.messages
    )
    return GroundedTurn(grounded, question, session.model, session)


def _stream(turn: GroundedTurn, services: Services, body: AsyncIterator[bytes], media_type: str) -> Any:
    return GuardedStreamingResponse(body, send_timeout_s=services.settings.stalled_reader_timeout_s,
                                    on_close=turn.close, media_type=media_type, headers=STREAM_HEADERS)  # fmt: skip


async def _collect(request: Request, turn: GroundedTurn) -> dict[str, str]:
    """The whole answer by channel, for a non-streaming reply; the turn is closed whatever happens."""

    async def gather() -> dict[str, str]:
        parts = {"reasoning": "", "content": ""}
        async for channel, text in turn.pieces():
            if channel in parts:
                parts[channel] += text
        return parts

    try:
        return await run_until_disconnect(request, gather())
    finally:
        await turn.close()


# --- /v1/knowledge-bases/{kb}/ask -------------------------------------------------------------
async def ask_response(request: Request, services: Services, turn: GroundedTurn, stream: bool) -> Any:
    notes = list(turn.grounded.notes)
    if stream:

        async def events() -> AsyncIterator[bytes]:
            yield sse({"type": "citations", "citations": turn.citations, "notes": notes})
            try:
                async for channel, text in turn.pieces():
                    if channel == "done":
                        yield sse({"type": "done", "usage": turn.usage(), "refused": turn.session is None})
                    else:
                        yield sse({"type": channel, "text": text})
            except Exception as exc:
                message, status, code = error_text(exc)
                yield sse(
                    {"type": "error", **error_payload(request.url.path, message, status=status, code=code)}
                )
            yield DONE

        return _stream(turn, services, events(), "text/event-stream")
    parts = await _collect(request, turn)
    return {"answer": parts["content"].strip(), "reasoning": parts["reasoning"].strip() or None,
            "citations": turn.citations, "model": turn.model, "usage": turn.usage(),
            "refused": turn.session is None, "notes": notes}  # fmt: skip


# --- OpenAI: POST /v1/chat/completions with model "kb:NAME" or "knowledge_base" ----------------
async def openai_kb_chat(body: Any, request: Request, services: Services) -> Any:
    from bendi.gateway.openai_api.translate import chunk, new_id, now_s, to_messages, to_sampling

    kb_name, model = kb_and_model(body.model, body.knowledge_base)
    params = to_sampling(body, body.max_completion_tokens or body.max_tokens)
    turn = await open_grounded_turn(request, services, knowledge_base=kb_name, model=model,
                                    messages=to_messages(body), max_tokens=params.max_tokens, params=params)  # fmt: skip
    field = services.settings.reasoning_field
    completion_id, created = new_id("chatcmpl"), now_s()
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def events() -> AsyncIterator[bytes]:
            first = chunk("chat.completion.chunk", completion_id, turn.model, created,
                          [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])  # fmt: skip
            yield sse({**first, "citations": turn.citations})
            try:
                async for channel, text in turn.pieces():
                    if channel == "done":
                        delta: dict[str, Any] = {}
                        finish = [{"index": 0, "delta": delta, "finish_reason": turn.finish_reason}]
                        yield sse(chunk("chat.completion.chunk", completion_id, turn.model, created, finish))
                        if include_usage:  # the last chunk, no choices, as for every other model
                            yield sse(chunk("chat.completion.chunk", completion_id, turn.model, created, [],
                                            turn.usage()))  # fmt: skip
                    else:
                        key = field if channel == "reasoning" else "content"
                        piece = [{"index": 0, "delta": {key: text}, "finish_reason": None}]
                        yield sse(chunk("chat.completion.chunk", completion_id, turn.model, created, piece))
            except Exception as exc:
                message, status, code = error_text(exc)
                yield sse(error_payload(request.url.path, message, status=status, code=code))
            yield DONE

        return _stream(turn, services, events(), "text/event-stream")
    parts = await _collect(request, turn)
    message = {
        "role": "assistant",
        "content": parts["content"].strip(),
        field: parts["reasoning"].strip() or None,
    }
    return {"id": completion_id, "object": "chat.completion", "created": created, "model": turn.model,
            "system_fingerprint": "bendi", "usage": turn.usage(), "citations": turn.citations,
            "choices": [{"index": 0, "message": message, "finish_reason": turn.finish_reason, "logprobs": None}]}  # fmt: skip


# --- Ollama: POST /api/chat with model "kb:NAME" ----------------------------------------------
async def ollama_kb_chat(body: Any, request: Request, services: Services) -> Any:
    from bendi.gateway.ollama_api.translate import final_stats, timestamp, to_messages, to_sampling

    started = time.monotonic()
    kb_name, model = kb_and_model(body.model, getattr(body, "knowledge_base", None))
    params = to_sampling(body.options, services.settings.context_tokens)
    turn = await open_grounded_turn(request, services, knowledge_base=kb_name, model=model,
                                    messages=to_messages(body.messages), max_tokens=params.max_tokens, params=params)  # fmt: skip
    model_name = body.model

    def final(content: str = "", thinking: str = "") -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        # Ollama's counters and durations as plain models give them; retrieval and queueing before
        # the generation count as load time, so total_duration is the whole wait the caller saw.
        finished = turn.finished or Finished("stop", Usage(0, 0))
        before_s = max(0.0, time.monotonic() - started - finished.total_time_s)
        return {"model": model_name, "created_at": timestamp(), "message": message,
                **final_stats(finished, before_s), "citations": turn.citations}  # fmt: skip

    if body.stream:

        async def events() -> AsyncIterator[bytes]:
            try:
                async for channel, text in turn.pieces():
                    if channel == "done":
                        yield ndjson(final())
                    else:
                        key = "thinking" if channel == "reasoning" else "content"
                        message = {"role": "assistant", "content": "", key: text}
                        yield ndjson(
                            {
                                "model": model_name,
                                "created_at": timestamp(),
                                "message": message,
                                "done": False,
                            }
                        )
            except Exception as exc:
                yield ndjson({"error": error_text(exc)[0]})

        return _stream(turn, services, events(), "application/x-ndjson")
    parts = await _collect(request, turn)
    return final(parts["content"].strip(), parts["reasoning"].strip())
