"""A preset's defaults applied to a request, in one place for every API: its SYSTEM when the request
has no system message, its MESSAGE turns before the conversation, its PARAMETERs as defaults the
request overrides (stop strings merged), and its knowledge base (the request then takes the
knowledge-base chat path, with citations)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from bendi.services import Services
from bendi.store.modelfile_params import MAX_STOPS
from bendi.store.presets import Preset, find_installed_quietly, find_preset

Body = TypeVar("Body", bound=BaseModel)
# Preset parameter (Ollama option name) -> OpenAI request field.
_OPENAI_FIELDS = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "seed": "seed",
    "repeat_penalty": "repeat_penalty", "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}  # fmt: skip


def preset_for(services: Services, model: str | None) -> Preset | None:
    """The preset a request's model names; None for plain models (an installed model wins a name)."""
    if not model or model.startswith("kb:"):
        return None
    preset = find_preset(services.paths, model)
    if preset is None or find_installed_quietly(services.paths, model) is not None:
        return None  # resolve_model serves the installed model then, so its defaults must not apply
    return preset


def _merged_stops(requested: Any, preset: Preset) -> list[str]:
    own = [requested] if isinstance(requested, str) else list(requested or [])
    return list(dict.fromkeys([*own, *preset.parameters.get("stop", [])]))[:MAX_STOPS]


def _turns(preset: Preset, has_system: bool) -> list[dict[str, str]]:
    """The messages a preset puts before the request's own: its SYSTEM (unless the request has one)
    and its few-shot MESSAGE turns."""
    turns = [] if has_system or preset.system is None else [{"role": "system", "content": preset.system}]
    return turns + [dict(m) for m in preset.messages]


def apply_openai(services: Services, body: Body) -> Body:
    """A /v1/chat/completions or /v1/completions request with its preset's defaults filled in."""
    preset = preset_for(services, getattr(body, "model", None))
    if preset is None:
        return body
    update: dict[str, Any] = {}
    for key, field in _OPENAI_FIELDS.items():
        if key in preset.parameters and getattr(body, field, None) is None:
            update[field] = preset.parameters[key]
    predict = preset.parameters.get("num_predict")
    has_limit = getattr(body, "max_tokens", None) or getattr(body, "max_completion_tokens", None)
    if isinstance(predict, int) and predict > 0 and not has_limit:
        update["max_tokens"] = predict
    if preset.parameters.get("stop"):
        update["stop"] = _merged_stops(getattr(body, "stop", None), preset)
    messages = getattr(body, "messages", None)
    if messages is not None:
        from bendi.gateway.openai_api.protocol import ChatMessageIn

        has_system = any(m.role in ("system", "developer") for m in messages)
        turns = [ChatMessageIn(role=t["role"], content=t["content"]) for t in _turns(preset, has_system)]  # type: ignore[arg-type]
        update["messages"] = turns + list(messages)
        if preset.knowledge_base and not getattr(body, "knowledge_base", None):
            update["knowledge_base"] = preset.knowledge_base
    return body.model_copy(update=update)


def ollama_options(preset: Preset | None, options: dict[str, Any]) -> dict[str, Any]:
    """Ollama `options` over the preset's parameters (Ollama's names are the Modelfile's)."""
    if preset is None:
        return options
    merged = {k: v for k, v in preset.parameters.items() if k != "stop"} | options
    if preset.parameters.get("stop"):
        merged["stop"] = _merged_stops(options.get("stop"), preset)
    return merged


def apply_ollama(services: Services, body: Body) -> Body:
    """An /api/chat or /api/generate request with its preset's defaults filled in."""
    preset = preset_for(services, getattr(body, "model", None))
    if preset is None:
        return body
    update: dict[str, Any] = {"options": ollama_options(preset, getattr(body, "options", {}))}
    messages = getattr(body, "messages", None)
    if messages:  # /api/chat (with no messages it only loads or unloads the model: left as it is)
        from bendi.gateway.ollama_api.protocol import OllamaMessage

        has_system = any(m.role == "system" for m in messages)
        turns = [OllamaMessage(role=t["role"], content=t["content"]) for t in _turns(preset, has_system)]  # type: ignore[arg-type]
        update["messages"] = turns + list(messages)
        if preset.knowledge_base and not getattr(body, "knowledge_base", None):
            update["knowledge_base"] = preset.knowledge_base
    elif (
        messages is None
        and not getattr(body, "raw", False)
        and getattr(body, "system", None) is None
        and preset.system is not None
    ):
        update["system"] = preset.system  # /api/generate: its `system` field
    return body.model_copy(update=update)


def generate_turns(services: Services, model: str | None) -> list[Any]:
    """/api/generate: the preset's few-shot MESSAGE turns, to go between the system and the prompt."""
    from bendi.gateway.ollama_api.protocol import OllamaMessage

    preset = preset_for(services, model)
    if preset is None:
        return []
    return [OllamaMessage(role=m["role"], content=m["content"]) for m in preset.messages]  # type: ignore[arg-type]
