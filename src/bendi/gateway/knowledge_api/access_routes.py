"""Who may use a knowledge base (/v1/knowledge-bases/{kb}/access): its owner and access list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from bendi.access.grants import Grant
from bendi.core.errors import NotFoundError, UserInputError
from bendi.gateway.accounts_api.protocol import NewGrant
from bendi.gateway.audit_hooks import note, record_action
from bendi.gateway.dependencies import get_services, principal_of, readable_kbs
from bendi.services import Services

router = APIRouter(prefix="/v1/knowledge-bases", tags=["knowledge bases"])
ServicesDep = Annotated[Services, Depends(get_services)]


def managed_kb(request: Request, services: Services, kb: str) -> str:
    """The base's id when the caller may manage it: 404 when they cannot see it, 403 when they only use it."""
    name = services.knowledge.get(kb, readable_kbs(request)).name
    services.access.policy.require_kb(principal_of(request), name, "manage")
    note(request, kb=name)
    return name


def _subject_name(services: Services, grant: Grant) -> str:
    accounts = services.access.accounts
    try:
        if grant.subject_kind == "user":
            return accounts.user(grant.subject_id).display_name
        return accounts.department(grant.subject_id).name
    except NotFoundError:
        return "(deleted)"


def _grant_json(services: Services, grant: Grant) -> dict[str, Any]:
    return {**grant.to_json(), "subject_name": _subject_name(services, grant)}


@router.get("/{kb}/access", summary="A knowledge base's owner and access list (owner or admin)")
async def get_access(kb: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    name = await run_in_threadpool(managed_kb, request, services, kb)
    grants = services.access.grants
    owner_id = grants.owner(name)
    owner = None
    if owner_id:
        try:
            user = services.access.accounts.user(owner_id)
            owner = {"id": user.id, "username": user.username, "display_name": user.display_name}
        except NotFoundError:
            owner = None
    return {"kb": name, "owner": owner, "grants": [_grant_json(services, g) for g in grants.grants(name)]}


@router.post("/{kb}/access", status_code=201, summary="Give a department or a user read or write access")
async def add_grant(kb: str, body: NewGrant, request: Request, services: ServicesDep) -> dict[str, Any]:
    if (body.department is None) == (body.user is None):
        raise UserInputError("Give exactly one of 'department' or 'user'.")
    name = await run_in_threadpool(managed_kb, request, services, kb)
    accounts = services.access.accounts
    if body.department is not None:
        kind, subject = "department", accounts.department(body.department).id
    else:
        kind, subject = "user", accounts.find_user(body.user or "").id
    grant = await run_in_threadpool(
        lambda: services.access.grants.grant(name, kind, subject, body.permission)  # type: ignore[arg-type]
    )
    record_action(request, "acl.grant", kb=name, subject_kind=kind, subject=_subject_name(services, grant),
                  permission=grant.permission)  # fmt: skip
    return _grant_json(services, grant)


@router.delete("/{kb}/access/{grant_id}", summary="Remove one entry of the access list")
async def remove_grant(kb: str, grant_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    name = await run_in_threadpool(managed_kb, request, services, kb)
    grant = await run_in_threadpool(services.access.grants.revoke, name, grant_id[:64])
    record_action(request, "acl.revoke", kb=name, subject_kind=grant.subject_kind,
                  subject=_subject_name(services, grant), permission=grant.permission)  # fmt: skip
    return {"id": grant.id, "deleted": True}
