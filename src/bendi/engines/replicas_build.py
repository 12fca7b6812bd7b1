"""Build a ReplicaSet from a model's upstream specs: discover each upstream, pick the chat template."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import httpx

from bendi.core.errors import BendiError, EngineError, OverloadedError
from bendi.core.settings import Settings
from bendi.engines.chat_template import CHATML_TEMPLATE, ChatTemplate
from bendi.engines.engine_select import is_hf_model
from bendi.engines.hf_model import read_hf_model
from bendi.engines.messages import ChatMessage, RenderedPrompt
from bendi.engines.protocol import Engine, EngineInfo
from bendi.engines.remote import LOCAL, Discovered, UpstreamSpec, discover, headers
from bendi.engines.replicas import Replica, ReplicaSet
from bendi.engines.replicas_chat import encode_chat
from bendi.engines.upstream import UpstreamEngine
from bendi.store.gguf import read_gguf
from bendi.store.resolve import LocalModel

HEALTH_TIMEOUT_S = 2.0  # a replica that cannot answer /health this fast is treated as down


def local_template(model: LocalModel) -> ChatTemplate | None:
    """A local model's chat template, for replicas of the same name. BOS stays out: bendi and
    llama-server add it themselves (a Hugging Face template keeps its own, as vLLM is told not to)."""
    if is_hf_model(model):
        return read_hf_model(model.path).template
    try:
        source = read_gguf(model.path).chat_template
    except BendiError:
        return None
    return ChatTemplate(source or CHATML_TEMPLATE)  # what bendi's llama.cpp engine uses too


def _reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}".rstrip(": ")


async def build_replica_set(
    model: str,
    specs: Sequence[UpstreamSpec],
    settings: Settings,
    *,
    local_template: ChatTemplate | None,
    local_engine: Callable[[], Awaitable[Engine]] | None,
) -> ReplicaSet:
    """The set for `model`. Replicas that cannot be reached now start out of service and join when
    a health check finds them up. The chat template is the same-named local model's when this bendi
    has it (or runs it as a replica), else the first reachable upstream's (/props, /api/show); with
    none (vLLM, SGLang), chats pass through to the replicas' /v1/chat/completions."""
    replicas: list[Replica] = []
    clients: list[httpx.AsyncClient] = []
    found: list[Discovered] = []
    local: Engine | None = None
    template = local_template
    holder: dict[str, Callable[[Sequence[ChatMessage], bool], RenderedPrompt]] = {}

    def render(messages: Sequence[ChatMessage], add: bool) -> RenderedPrompt:
        return holder["render"](messages, add)

    def make_engine(spec: UpstreamSpec, got: Discovered) -> Engine:
        info = EngineInfo(model, "upstream", got.context_tokens or settings.context_tokens)
        return UpstreamEngine(spec.url, info, render, served_model_name=got.served_id, api_key=spec.api_key,
                              timeout_s=settings.request_timeout_s, dialect=got.dialect)  # fmt: skip

    for spec in specs:
        if spec.url == LOCAL:
            if local_engine is None:
                raise EngineError(
                    f"{model}=local needs {model} installed on this machine (bendi pull {model})."
                )
            local = await local_engine()
            replicas.append(Replica(LOCAL, local))
            continue
        client = httpx.AsyncClient(base_url=spec.url, timeout=HEALTH_TIMEOUT_S, trust_env=False)
        clients.append(client)
        replica = Replica(spec.url, None, probe=_probe(client, spec), healthy=False)
        try:
            got = await discover(client, spec)
        except (
            httpx.HTTPError,
            ValueError,
            BendiError,
        ) as exc:  # down, refusing or not serving yet: joins later
            replica.last_error = _reason(exc)
        else:
            found.append(got)
            template = template or got.template
            replica.engine, replica.healthy = make_engine(spec, got), True
        replica.connect = _connector(client, spec, make_engine)
        replicas.append(replica)
    if local is not None:
        holder["render"] = lambda messages, add: local.render_chat(messages, add_generation_prompt=add)
    elif template is not None:
        chosen = template
        holder["render"] = lambda messages, add: chosen.render(messages, add_generation_prompt=add)
    elif found:
        holder["render"] = encode_chat  # every replica renders the chat itself, with the same template
    else:
        for client in clients:
            await client.aclose()
        why = "; ".join(f"{r.label}: {r.last_error}" for r in replicas if r.last_error)
        raise OverloadedError(f"No replica of {model} can be reached ({why or 'none configured'}).", 5.0)
    contexts = [got.context_tokens for got in found if got.context_tokens]
    context = min([*contexts, local.info.context_tokens] if local else contexts or [settings.context_tokens])
    info = EngineInfo(model, "replicas", context)
    replica_set = ReplicaSet(info, replicas, render, health_interval_s=settings.upstream_health_interval_s)
    replica_set.on_close.extend(client.aclose for client in clients)
    replica_set.start()
    return replica_set


def _probe(client: httpx.AsyncClient, spec: UpstreamSpec) -> Callable[[], Awaitable[str | None]]:
    async def probe() -> str | None:
        try:
            response = await client.get("/health", headers=headers(spec))
        except httpx.HTTPError as exc:
            return f"health check failed: {_reason(exc)}"
        return None if response.status_code == 200 else f"health check answered {response.status_code}"

    return probe


def _connector(
    client: httpx.AsyncClient, spec: UpstreamSpec, make: Callable[[UpstreamSpec, Discovered], Engine]
) -> Callable[[], Awaitable[Engine]]:
    async def connect() -> Engine:
        return make(spec, await discover(client, spec))

    return connect
