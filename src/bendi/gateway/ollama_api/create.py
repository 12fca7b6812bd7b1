"""Presets in Ollama's wire format: POST /api/create (JSON form and the legacy `modelfile` text), and
what /api/show and /api/tags say about a preset."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from bendi.core.errors import ModelfileError, PayloadTooLargeError, UserInputError
from bendi.gateway.audit_hooks import record_action
from bendi.gateway.dependencies import get_services, readable_kbs
from bendi.gateway.streaming import ndjson
from bendi.services import Services
from bendi.store.modelfile import MAX_MODELFILE_BYTES, MESSAGE_ROLES, parse_modelfile
from bendi.store.modelfile_params import check_parameters, not_applied
from bendi.store.modelfile_write import parameters_text, render_modelfile
from bendi.store.presets import (
    Preset,
    canonical_name,
    check_unused_base,
    find_installed_quietly,
    find_preset,
    list_presets,
    remove_preset,
)
from bendi.store.presets_create import create_preset
from bendi.store.resolve import resolve_model

router = APIRouter(tags=["ollama"])
ServicesDep = Annotated[Services, Depends(get_services)]


class CreateMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: str
    content: str = ""


class CreateRequest(BaseModel):
    """Ollama's current form (model, from, system, parameters, messages, template, license, adapters)
    and its legacy one (name + modelfile text); `knowledge_base` is bendi's own."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str = ""
    name: str = ""  # legacy clients
    from_: str | None = Field(default=None, alias="from")
    modelfile: str | None = None  # legacy: the Modelfile's text
    system: str | None = None
    template: str | None = None
    license: str | list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[CreateMessage] | None = Field(default=None, max_length=1000)
    # Uploaded blobs and quantization are refused (the route says why); the schema says so too.
    adapters: dict[str, str] | None = Field(default=None, json_schema_extra={"maxProperties": 0})
    files: dict[str, str] | None = Field(default=None, json_schema_extra={"maxProperties": 0})
    quantize: str | None = Field(default=None, json_schema_extra={"maxLength": 0})
    knowledge_base: str | None = None
    stream: bool = True


def _preset_of(body: CreateRequest) -> Preset:
    name = body.model or body.name
    if not name:
        raise UserInputError('Say what the preset is called: {"model": "NAME", "from": "BASE"}.')
    texts = [body.modelfile, body.system, body.template, *(m.content for m in body.messages or [])]
    if sum(len(t) for t in texts if t) > MAX_MODELFILE_BYTES:
        raise PayloadTooLargeError(
            f"The preset's text (Modelfile, system, template, messages) is over {MAX_MODELFILE_BYTES / 1e6:.0f} MB; "
            "put long reference text in a knowledge base instead."
        )
    if body.files or body.adapters or body.quantize:
        raise UserInputError(
            "bendi does not take uploaded model or adapter files (`files`, `adapters`) or `quantize` in "
            "/api/create: base a preset on an installed model (`from`), or run `bendi create` on the server."
        )
    if body.modelfile is not None:  # the legacy form; its own fields still override (as Ollama does)
        preset = parse_modelfile(body.modelfile, Path("/nonexistent"), name=name)
    else:
        if not body.from_:
            raise UserInputError('Say which model the preset is based on: {"from": "BASE"}.')
        preset = Preset(name=name, base=body.from_)
    license_text = "\n".join(body.license) if isinstance(body.license, list) else body.license
    messages = preset.messages
    if body.messages is not None:
        for message in body.messages:
            if message.role not in MESSAGE_ROLES:
                raise ModelfileError(
                    f"message role {message.role!r} is not one of {', '.join(MESSAGE_ROLES)}."
                )
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
    return Preset(
        name=name, base=body.from_ or preset.base, system=body.system if body.system is not None else preset.system,
        parameters={**preset.parameters, **check_parameters(body.parameters or {})},
        template=body.template if body.template is not None else preset.template, messages=messages,
        adapters=preset.adapters, knowledge_base=body.knowledge_base or preset.knowledge_base,
        license=license_text if license_text is not None else preset.license, modelfile=body.modelfile,
    )  # fmt: skip


@router.post("/api/create", response_model=None)
async def create(body: CreateRequest, request: Request, services: ServicesDep) -> Any:
    preset = _preset_of(body)
    if preset.knowledge_base:  # one the creator may read, under its identifier
        preset = replace(
            preset, knowledge_base=services.knowledge.get(preset.knowledge_base, readable_kbs(request)).name
        )
    saved = await asyncio.to_thread(
        create_preset, services.settings, services.paths, preset, allow_paths=False
    )
    record_action(request, "preset.create", model=saved.name, base=saved.base, kb=saved.knowledge_base)
    lines: list[dict[str, Any]] = [{"status": f"using base model {saved.base}"}]
    lines += [
        {"status": f"note: parameter {k} is kept but not applied per request"}
        for k in not_applied(saved.parameters)
    ]
    lines += [{"status": "writing manifest"}, {"status": "success"}]
    if not body.stream:
        return lines[-1]

    async def stream() -> AsyncIterator[bytes]:
        for line in lines:
            yield ndjson(line)

    return StreamingResponse(stream(), media_type="application/x-ndjson")


def base_of(services: Services, preset: Preset) -> Any:
    """The LocalModel a preset's base names (for details and the template)."""
    return resolve_model(services.paths, preset.base)


async def show_preset(request: Request, services: Services, preset: Preset) -> dict[str, Any]:
    """/api/show for a preset: its Modelfile, parameters, system, template (its own, else the base's)."""
    from bendi.gateway.ollama_api.routes import _details, _header, _iso

    base = base_of(services, preset)
    header = await asyncio.to_thread(_header, request, base)
    details = _details(header, base.format) | {"parent_model": preset.base}
    return {
        "modelfile": render_modelfile(preset), "modelfile_original": preset.modelfile or "",
        "parameters": parameters_text(preset), "template": preset.template or (header.chat_template if header else None) or "",
        "system": preset.system or "", "messages": preset.messages, "knowledge_base": preset.knowledge_base,
        "details": details, "model_info": {}, "capabilities": ["completion"],
        "license": preset.license or (header.license if header else None) or "", "modified_at": _iso(preset.created_s),
    }  # fmt: skip


async def preset_tags(request: Request, services: Services, taken: set[str]) -> list[dict[str, Any]]:
    """/api/tags rows for the presets (size and details of the base; parent_model names it)."""
    from bendi.gateway.ollama_api.routes import _details, _header, _iso

    rows = []
    for preset in list_presets(services.paths):
        if preset.name in taken:
            continue
        try:
            base = base_of(services, preset)
        except Exception:  # a base removed by hand: list the preset anyway, without details
            rows.append({"name": preset.name, "model": preset.name, "modified_at": _iso(preset.created_s),
                         "size": 0, "digest": "", "details": {"parent_model": preset.base}})  # fmt: skip
            continue
        header = await asyncio.to_thread(_header, request, base)
        rows.append({"name": preset.name, "model": preset.name, "modified_at": _iso(preset.created_s),
                     "size": base.size_bytes, "digest": "", "knowledge_base": preset.knowledge_base,
                     "details": _details(header, base.format) | {"parent_model": preset.base}})  # fmt: skip
    return rows


def delete_preset_or_check_base(request: Request, services: Services, name: str) -> bool:
    """/api/delete: True when `name` was a preset (now removed); a model that presets are built on is
    refused (their chats would fail), naming them; else False and the store removes the model."""
    if find_installed_quietly(services.paths, name) is None and find_preset(services.paths, name) is not None:
        remove_preset(services.paths, name)
        record_action(request, "preset.delete", model=canonical_name(name))
        return True
    check_unused_base(services.paths, name)
    return False
