"""Ollama-compatible routes (/api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/embed, ...)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from bendi import __version__
from bendi.core.errors import BendiError, UserInputError
from bendi.engines.messages import Finished, TextDelta
from bendi.engines.reasoning import ReasoningSplitter
from bendi.gateway.dependencies import get_services
from bendi.gateway.generation import Session, admitted, error_text, open_session
from bendi.gateway.ollama_api.create import preset_tags, show_preset
from bendi.gateway.ollama_api.protocol import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    LegacyEmbeddingsRequest,
    ModelRequest,
    OllamaBase,
)
from bendi.gateway.ollama_api.translate import (
    final_stats,
    keep_alive_seconds,
    parameter_size,
    timestamp,
    to_messages,
    to_sampling,
)
from bendi.gateway.presets import apply_ollama, generate_turns, preset_for
from bendi.gateway.streaming import (
    GuardedStreamingResponse,
    ndjson,
    run_until_disconnect,
    stop_disconnect_watch,
)
from bendi.services import Services
from bendi.store.gguf import GgufInfo, read_gguf
from bendi.store.resolve import LocalModel, installed_models

router = APIRouter(prefix="/api", tags=["ollama"])
ServicesDep = Annotated[Services, Depends(get_services)]
# Ollama clients compare versions; report the Ollama API level bendi implements.
OLLAMA_API_VERSION = "0.12.0"


@router.get("/version")
async def version() -> dict[str, str]:
    return {"version": OLLAMA_API_VERSION, "bendi_version": __version__}


def _header(request: Request, model: LocalModel) -> GgufInfo | None:
    """The model file's GGUF header (read once per file version; never loads the model)."""
    cache: dict[tuple[str, float], GgufInfo | None] = (
        getattr(request.app.state, "ollama_gguf_headers", None) or {}
    )
    request.app.state.ollama_gguf_headers = cache
    try:
        key = (str(model.path), model.path.stat().st_mtime)
    except OSError:
        return None
    if key not in cache:
        try:
            cache[key] = read_gguf(model.path)
        except BendiError:
            cache[key] = None  # not a GGUF we can read (or safetensors for a GPU engine): no details
    return cache[key]


def _details(header: GgufInfo | None, file_format: str = "gguf") -> dict[str, Any]:
    """Ollama's `details`; `file_format` is the store's ("gguf", or "hf" for safetensors weights)."""
    arch = header.architecture if header else None
    return {
        "parent_model": "",
        "format": file_format,
        "family": arch or "",
        "families": [arch] if arch else None,
        "parameter_size": parameter_size(header.parameter_count) if header else "",
        "quantization_level": (header.quantization or "") if header else "",
    }


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


@router.get("/tags")
async def tags(request: Request, services: ServicesDep) -> dict[str, Any]:
    models = [
        {"name": m.name, "model": m.name, "modified_at": _iso(m.modified_s), "size": m.size_bytes,
         "digest": "", "details": _details(await asyncio.to_thread(_header, request, m), m.format)}
        for m in installed_models(services.paths)
    ]  # fmt: skip
    names = {m["name"] for m in models}
    models += await preset_tags(request, services, {str(n) for n in names})
    models += [{"name": n, "model": n, "modified_at": _iso(time.time()), "size": 0, "digest": "",
                "details": _details(None)} for n in services.engines.upstream_models() if n not in names]  # fmt: skip
    return {"models": models}


@router.get("/ps")
async def ps(request: Request, services: ServicesDep) -> dict[str, Any]:
    now = time.time()
    models: list[dict[str, Any]] = []
    for loaded in services.engines.loaded():
        local = services.engines.resolve(loaded.info.model_name)
        models.append({
            "name": loaded.info.model_name, "model": loaded.info.model_name, "size": loaded.info.memory_bytes,
            "digest": "", "details": _details(await asyncio.to_thread(_header, request, local), local.format), "expires_at": _iso(now + loaded.expires_in_s),
            "size_vram": 0, "context_length": loaded.info.context_tokens,
        })  # fmt: skip
        if loaded.adapters:  # bendi's own field: LoRA adapters applied (no server paths)
            models[-1]["adapters"] = [{k: v for k, v in a.items() if k != "path"} for a in loaded.adapters]
    for replica in services.engines.replicas():  # bendi's own field: where a replicated model runs
        entry = next((m for m in models if m["name"] == replica.model), None)
        if entry is not None:
            rows: list[dict[str, Any]] = entry.setdefault("replicas", [])
            rows.append({
                "url": replica.url, "healthy": replica.healthy, "in_flight": replica.in_flight,
                "requests_total": replica.requests_total, "failures_total": replica.failures_total,
                "last_error": replica.last_error,
            })  # fmt: skip
    return {"models": models}


@router.post("/show")
async def show(body: ModelRequest, request: Request, services: ServicesDep) -> dict[str, Any]:
    if not body.target:
        raise UserInputError('Say which model to show: {"model": "NAME"}.')
    preset = preset_for(services, body.target)
    if preset is not None:
        return await show_preset(request, services, preset)
    local = services.engines.resolve(body.target)
    header = await asyncio.to_thread(_header, request, local)
    metadata = header.metadata if header else {}
    template = (header.chat_template if header else None) or ""
    capabilities = ["completion"]
    if "<think>" in template:
        capabilities.append("thinking")
    capabilities.append("embedding")  # every llama.cpp model embeds (chat models: a labelled fallback)
    return {
        "modelfile": f"# bendi\nFROM {local.path}\n",
        "parameters": "",
        "template": template,
        "details": _details(header),
        "model_info": {k: v for k, v in metadata.items() if not k.startswith("tokenizer.ggml.")},
        "capabilities": capabilities,
        "license": (header.license if header else None) or "",
        "modified_at": _iso(local.modified_s),
    }


def _refuse_unsupported(body: OllamaBase) -> None:
    if body.format not in (None, ""):
        raise UserInputError(
            "`format` (JSON mode / structured output) is not supported by bendi yet; "
            "ask for JSON in the prompt instead, or leave `format` out."
        )


def _wants_thinking(body: OllamaBase) -> bool:
    return body.think is not False  # True, "low"/"medium"/"high", or unset: return it in `thinking`


async def _load_or_unload(services: Services, body: OllamaBase, kind: str) -> dict[str, Any] | None:
    """Ollama semantics: an empty prompt/messages request only loads (or, with keep_alive 0, unloads)."""
    keep = keep_alive_seconds(body.keep_alive)
    local = services.engines.resolve(body.model or services.engines.default_model_name())
    base: dict[str, Any] = {"model": local.name, "created_at": timestamp(), "done": True}
    if keep == 0:
        await services.engines.unload(local.name)
        reply = {"role": "assistant", "content": ""} if kind == "chat" else ""
        return base | {"done_reason": "unload", ("message" if kind == "chat" else "response"): reply}
    await services.engines.acquire(local.name, keep_alive_s=keep)
    reply = {"role": "assistant", "content": ""} if kind == "chat" else ""
    return base | {"done_reason": "load", ("message" if kind == "chat" else "response"): reply}


def _respond(request: Request, services: Services, session: Session, body: OllamaBase, kind: str,
             started_s: float) -> Any:  # fmt: skip
    splitter = ReasoningSplitter(starts_in_reasoning=session.opens_reasoning)
    thinking_wanted = _wants_thinking(body)
    load_s = 0.0

    def payload(content: str, thinking: str) -> dict[str, Any]:
        out: dict[str, Any] = {"model": session.model, "created_at": timestamp()}
        if kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking and thinking_wanted:
                message["thinking"] = thinking
            out["message"] = message
        else:
            out["response"] = content
            if thinking and thinking_wanted:
                out["thinking"] = thinking
        return out

    def split(text: str, final: bool = False) -> tuple[str, str]:
        pieces = (splitter.feed(text) if text else []) + (splitter.finish() if final else [])
        content = "".join(p.text for p in pieces if p.channel == "content")
        thinking = "".join(p.text for p in pieces if p.channel == "reasoning")
        return content, thinking

    if body.stream:

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for event in session.events():
                    if isinstance(event, TextDelta):
                        content, thinking = split(event.text)
                        if content or (thinking and thinking_wanted):
                            yield ndjson(payload(content, thinking) | {"done": False})
                    elif isinstance(event, Finished):
                        content, thinking = split("", final=True)
                        yield ndjson(payload(content, thinking) | final_stats(event, load_s))
            except Exception as exc:
                yield ndjson({"error": error_text(exc)[0]})

        return GuardedStreamingResponse(stream(), send_timeout_s=services.settings.stalled_reader_timeout_s,
                                        on_close=session.close, media_type="application/x-ndjson",
                                        headers={"Cache-Control": "no-cache"})  # fmt: skip

    async def collect() -> dict[str, Any]:
        contents, thoughts = [], []
        async for event in session.events():
            if isinstance(event, TextDelta):
                content, thinking = split(event.text)
                contents.append(content)
                thoughts.append(thinking)
        content, thinking = split("", final=True)
        contents.append(content)
        thoughts.append(thinking)
        assert session.finished is not None
        return payload("".join(contents), "".join(thoughts)) | final_stats(session.finished, load_s)

    return session.whole_reply(request, collect())


async def _admitted(request: Request, opening: Coroutine[Any, Any, Session], streaming: bool) -> Session:
    """Wait for admission and the first token, giving up (and the place in the queue) if the client
    leaves meanwhile; a stream then watches for the disconnect itself."""
    session = await run_until_disconnect(request, opening, keep_watching=not streaming)
    if streaming:
        stop_disconnect_watch(request)
    return session


@router.post("/chat", response_model=None)
async def chat(body: ChatRequest, request: Request, services: ServicesDep) -> Any:
    body = apply_ollama(services, body)  # a preset's system, turns, options, knowledge base
    if body.model.startswith("kb:") or getattr(body, "knowledge_base", None):
        from bendi.gateway.knowledge_api.chat import ollama_kb_chat

        return await ollama_kb_chat(body, request, services)
    _refuse_unsupported(body)
    if not body.messages:
        return await _load_or_unload(services, body, "chat")
    started = time.monotonic()
    engine_ctx = services.settings.context_tokens
    opening = open_session(request, services, body.model or None, to_sampling(body.options, engine_ctx),
                           messages=to_messages(body.messages), keep_alive_s=keep_alive_seconds(body.keep_alive),
                           stream=body.stream)  # fmt: skip
    session = await _admitted(request, opening, body.stream)
    result = _respond(request, services, session, body, "chat", started)
    return await result if not body.stream else result


@router.post("/generate", response_model=None)
async def generate(body: GenerateRequest, request: Request, services: ServicesDep) -> Any:
    body = apply_ollama(services, body)  # a preset's system and options
    if body.images:
        raise UserInputError("This model does not accept images; send text only.")
    _refuse_unsupported(body)
    if not body.prompt:
        return await _load_or_unload(services, body, "generate")
    started = time.monotonic()
    params = to_sampling(body.options, services.settings.context_tokens)
    keep = keep_alive_seconds(body.keep_alive)
    if body.raw:
        opening = open_session(
            request,
            services,
            body.model or None,
            params,
            prompt=body.prompt,
            keep_alive_s=keep,
            stream=body.stream,
        )
    else:
        turns = generate_turns(services, body.model)  # a preset's few-shot MESSAGE turns
        messages = to_messages(turns, body.system) + to_messages([_user(body.prompt)])
        opening = open_session(
            request,
            services,
            body.model or None,
            params,
            messages=messages,
            keep_alive_s=keep,
            stream=body.stream,
        )
    session = await _admitted(request, opening, body.stream)
    result = _respond(request, services, session, body, "generate", started)
    return await result if not body.stream else result


def _user(text: str) -> Any:
    from bendi.gateway.ollama_api.protocol import OllamaMessage

    return OllamaMessage(role="user", content=text)


async def _embed(
    request: Request, services: Services, model: str, texts: list[str], keep: float | None
) -> tuple[str, list[list[float]], bool]:
    async with admitted(request, services, model or None) as engine:
        vectors = await engine.embed(texts)
        # keep_alive counts from the end of the request: set before embedding, a keep_alive of 0 let
        # the pool unload the model under the running embedding (a crash in llama.cpp).
        await services.engines.acquire(engine.info.model_name, keep_alive_s=keep)
    return engine.info.model_name, vectors, engine.info.embeddings_are_fallback


@router.post("/embed")
async def embed(body: EmbedRequest, request: Request, services: ServicesDep) -> dict[str, Any]:
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts or any(not isinstance(t, str) for t in texts):
        raise UserInputError("`input` must be a string or a list of strings.")
    started = time.monotonic()
    name, vectors, fallback = await _embed(
        request, services, body.model, texts, keep_alive_seconds(body.keep_alive)
    )
    result: dict[str, Any] = {
        "model": name,
        "embeddings": vectors,
        "total_duration": int((time.monotonic() - started) * 1e9),
    }
    if fallback:
        result["embedding_source"] = "pooled-chat-model"  # not a trained embedding model: said so
    return result


@router.post("/embeddings")
async def embeddings(
    body: LegacyEmbeddingsRequest, request: Request, services: ServicesDep
) -> dict[str, Any]:
    _, vectors, _ = await _embed(request, services, body.model, [body.prompt], None)
    return {"embedding": vectors[0]}
