"""Knowledge-base HTTP API (/v1/knowledge-bases): manage bases and documents, upload, search, ask."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from bendi.access.policy import KbRight
from bendi.access.principal import Principal
from bendi.core.errors import ForbiddenError, PayloadTooLargeError, UserInputError
from bendi.engines.messages import ChatMessage, SamplingParams
from bendi.gateway.audit_hooks import note, record_action
from bendi.gateway.dependencies import get_services, principal_of, readable_kbs
from bendi.gateway.knowledge_api.chat import ask_response, open_grounded_turn
from bendi.gateway.knowledge_api.protocol import AskRequest, CreateKnowledgeBase, SearchRequest
from bendi.gateway.knowledge_api.uploads import store_upload, validate_upload_name
from bendi.gateway.knowledge_api.worker import IngestWorker
from bendi.knowledge.library import KnowledgeBase
from bendi.services import Services

router = APIRouter(prefix="/v1/knowledge-bases", tags=["knowledge bases"])
ServicesDep = Annotated[Services, Depends(get_services)]


def _kb(request: Request, services: Services, name: str) -> KnowledgeBase:
    """The base named by identifier or display name, among those this caller may read (else 404)."""
    return services.knowledge.get(name, readable_kbs(request))


def _worker(request: Request, services: Services) -> IngestWorker:
    """One ingestion worker per server, started on first use and stopped with the services."""
    worker: IngestWorker | None = getattr(request.app.state, "kb_worker", None)
    if worker is None:
        worker = IngestWorker(services.knowledge)
        request.app.state.kb_worker = worker
        services._closers.append(worker)
    return worker


def writable_kb(request: Request, services: Services, name: str, need: KbRight) -> KnowledgeBase:
    """The base when the caller may `need` it: 404 when they cannot see it, 403 when they only read it."""
    base = _kb(request, services, name)
    services.access.policy.require_kb(principal_of(request), base.name, need)
    note(request, kb=base.name)
    return base


def _permission(services: Services, principal: Principal, kb: str) -> str:
    """What the caller may do with a base, for the UI: read, write, owner or admin."""
    right = services.access.policy.kb_right(principal, kb)
    if right == "manage":
        return "admin" if principal.is_admin or principal.kind != "user" else "owner"
    return right or "read"


@router.get("")
async def list_knowledge_bases(request: Request, services: ServicesDep) -> dict[str, Any]:
    _worker(request, services)  # started early so documents a crash left queued are picked up again
    infos = await asyncio.to_thread(services.knowledge.list, readable_kbs(request))
    principal = principal_of(request)
    return {"data": [{**i.to_json(), "permission": _permission(services, principal, i.name)} for i in infos]}


@router.post("", status_code=201)
async def create_knowledge_base(
    body: CreateKnowledgeBase, request: Request, services: ServicesDep
) -> dict[str, Any]:
    principal = principal_of(request)
    if not services.access.policy.may_create_kb(principal):
        raise ForbiddenError("Only administrators and knowledge-base editors may create knowledge bases.")
    kb = await asyncio.to_thread(services.knowledge.create, body.name, body.description, body.embedding_model)
    if principal.user_id is not None:  # team mode: the creator owns it and manages who else may use it
        await asyncio.to_thread(services.access.grants.set_owner, kb.name, principal.user_id)
    note(request, kb=kb.name)
    record_action(request, "kb.create", status=201, kb=kb.name, display_name=kb.display_name)
    return {**kb.info().to_json(), "permission": _permission(services, principal, kb.name)}


@router.get("/{kb}")
async def get_knowledge_base(kb: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    return _kb(request, services, kb).info().to_json()


@router.delete("/{kb}")
async def delete_knowledge_base(kb: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    name = writable_kb(request, services, kb, "manage").name
    await asyncio.to_thread(services.knowledge.delete, name, readable_kbs(request))
    await asyncio.to_thread(services.access.grants.forget, name)  # a new base of that name starts clean
    record_action(request, "kb.delete", kb=name)
    return {"deleted": True}


@router.get("/{kb}/documents")
async def list_documents(kb: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    _worker(request, services)
    return {"data": [d.to_json() for d in _kb(request, services, kb).documents()]}


@router.get("/{kb}/documents/{doc_id}")
async def get_document(kb: str, doc_id: int, request: Request, services: ServicesDep) -> dict[str, Any]:
    return _kb(request, services, kb).index.document(doc_id).to_json()


@router.delete("/{kb}/documents/{doc_id}")
async def delete_document(kb: str, doc_id: int, request: Request, services: ServicesDep) -> dict[str, Any]:
    base = writable_kb(request, services, kb, "write")
    note(request, documents=[base.index.document(doc_id).file])
    await asyncio.to_thread(base.delete_document, doc_id)
    return {"deleted": True}


@router.post(
    "/{kb}/documents",
    status_code=202,
    openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                                         "tags": {"type": "string"}}}}}}},
)  # fmt: skip
async def upload_documents(kb: str, request: Request, services: ServicesDep) -> Any:
    """Store the uploaded files and queue them; ingestion runs in the server's background worker."""
    base = writable_kb(request, services, kb, "write")
    limit = services.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 1024 * 1024:
        raise PayloadTooLargeError(
            f"The upload is {int(declared)} bytes; this server accepts {limit} (BENDI_MAX_UPLOAD_BYTES)."
        )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UserInputError("Upload documents as multipart/form-data with one or more parts named 'files'.")
    form = await request.form(max_files=10_000)
    try:
        uploads = [part for part in form.getlist("files") if not isinstance(part, str)]
        if not uploads:
            raise UserInputError("No files in the upload: send one or more parts named 'files'.")
        raw_tags = form.get("tags")
        tags = [t.strip() for t in raw_tags.split(",") if t.strip()] if isinstance(raw_tags, str) else []
        labels = [validate_upload_name(part.filename) for part in uploads]  # all names checked first
        stored = []
        budget = limit
        for part, label in zip(uploads, labels, strict=True):
            path, size = await store_upload(part, base.uploads, budget)
            budget -= size
            stored.append((label, path))
    finally:
        await form.close()
    worker = _worker(request, services)
    docs = []
    for label, path in stored:
        doc_id = await asyncio.to_thread(base.index.upsert_document, "upload:" + label, label, status="queued",
                                         stored_path=str(path), tags=tags)  # fmt: skip
        worker.submit(base.name, doc_id)
        docs.append(base.index.document(doc_id).to_json())
    note(request, documents=[label for label, _ in stored])
    return JSONResponse({"data": docs}, status_code=202)


@router.post("/{kb}/search")
async def search_knowledge_base(
    kb: str, body: SearchRequest, request: Request, services: ServicesDep
) -> dict[str, Any]:
    base = _kb(request, services, kb)
    result = await asyncio.to_thread(base.search, body.query, top_k=body.top_k, mode=body.mode,  # type: ignore[arg-type]
                                     document_ids=body.document_ids, tags=body.tags)  # fmt: skip
    note(request, kb=base.name, documents=[h.file for h in result.hits], text=body.query)
    return {"data": [h.to_json() for h in result.hits]}


@router.post("/{kb}/ask", response_model=None)
async def ask_knowledge_base(kb: str, body: AskRequest, request: Request, services: ServicesDep) -> Any:
    # open_grounded_turn looks the base up in the caller's scope before any model is acquired.
    turn = await open_grounded_turn(
        request, services, knowledge_base=kb, model=body.model,
        messages=[ChatMessage("user", body.question)], top_k=body.top_k, max_tokens=body.max_tokens,
        params=SamplingParams(temperature=body.temperature), document_ids=body.document_ids,
    )  # fmt: skip
    return await ask_response(request, services, turn, body.stream)
