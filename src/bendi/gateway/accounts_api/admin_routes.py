"""Administration (/v1/admin): users, departments, everyone's API keys, usage and the audit log."""

from __future__ import annotations

import io
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bendi.core.errors import UserInputError
from bendi.gateway.accounts_api.auth_routes import issue_key
from bendi.gateway.accounts_api.protocol import NewDepartment, NewKeyFor, NewUser, UserChanges
from bendi.gateway.audit_hooks import record_action, trail
from bendi.gateway.dependencies import get_services
from bendi.services import Services

router = APIRouter(prefix="/v1/admin", tags=["administration"])
ServicesDep = Annotated[Services, Depends(get_services)]
SinceQuery = Annotated[str, Query(pattern=r"^[0-9]{1,5}[mhd]$", description="e.g. 90m, 12h, 7d")]
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}


def since_ts(since: str) -> float:
    return time.time() - int(since[:-1]) * _UNIT_S[since[-1]]


# --- users -----------------------------------------------------------------------------------
@router.get("/users", summary="Every user, with departments and quotas")
async def list_users(services: ServicesDep) -> dict[str, Any]:
    return {"data": [u.to_json() for u in await run_in_threadpool(services.access.accounts.users)]}


@router.post(
    "/users", status_code=201, summary="Create a user (a one-time password is returned if none is given)"
)
async def create_user(body: NewUser, request: Request, services: ServicesDep) -> dict[str, Any]:
    user, generated = await run_in_threadpool(lambda: services.access.accounts.create_user(
        body.username, role=body.role, password=body.password, display=body.display_name,
        departments=body.departments))  # fmt: skip
    record_action(request, "user.create", target=user.username, role=user.role)
    return {"user": user.to_json(), "password": generated}


@router.get("/users/{user_id}", summary="One user")
async def get_user(user_id: str, services: ServicesDep) -> dict[str, Any]:
    return services.access.accounts.user(user_id[:64]).to_json()


@router.patch("/users/{user_id}", summary="Change a user's name, role, departments, quotas, or disable them")
async def update_user(
    user_id: str, body: UserChanges, request: Request, services: ServicesDep
) -> dict[str, Any]:
    given = body.model_dump(exclude_unset=True)
    accounts = services.access.accounts
    user = await run_in_threadpool(lambda: accounts.update_user(
        user_id[:64], display=given.get("display_name"), role=given.get("role"), disabled=given.get("disabled"),
        departments=given.get("departments"), requests_per_minute=given.get("requests_per_minute", -1),
        tokens_per_day=given.get("tokens_per_day", -1)))  # fmt: skip
    if given.get("disabled"):
        await run_in_threadpool(services.access.keys.revoke_all, user.id)
    action = "user.disable" if given.get("disabled") else "user.update"
    record_action(request, action, target=user.username, changed=sorted(given))
    return user.to_json()


@router.delete("/users/{user_id}", summary="Delete a user with their keys and sessions")
async def delete_user(user_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    user = services.access.accounts.user(user_id[:64])
    await run_in_threadpool(services.access.accounts.delete_user, user.id)
    record_action(request, "user.delete", target=user.username)
    return {"id": user.id, "deleted": True}


@router.post(
    "/users/{user_id}/password", summary="Reset a password: a one-time password; sessions and keys end"
)
async def reset_password(user_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    accounts = services.access.accounts
    user = accounts.user(user_id[:64])
    if user.source != "local":
        raise UserInputError(f"{user.username} signs in through LDAP; reset the password in the directory.")
    generated = await run_in_threadpool(lambda: accounts.set_password(user.id, None, must_change=True))
    # A reset is what an administrator does when an account may be compromised: its keys end too.
    await run_in_threadpool(services.access.keys.revoke_all, user.id)
    record_action(request, "user.password_reset", target=user.username)
    return {"password": generated}


# --- departments -----------------------------------------------------------------------------
@router.get("/departments", summary="Every department")
async def list_departments(services: ServicesDep) -> dict[str, Any]:
    return {"data": [d.to_json() for d in services.access.accounts.departments()]}


@router.post("/departments", status_code=201, summary="Create a department (any script: 通风科)")
async def create_department(body: NewDepartment, request: Request, services: ServicesDep) -> dict[str, Any]:
    dept = await run_in_threadpool(services.access.accounts.create_department, body.name)
    record_action(request, "department.create", target=dept.name)
    return dept.to_json()


@router.delete("/departments/{department_id}", summary="Delete a department (its access entries go too)")
async def delete_department(department_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    dept = services.access.accounts.department(department_id[:100])
    await run_in_threadpool(services.access.accounts.delete_department, dept.id)
    record_action(request, "department.delete", target=dept.name)
    return {"id": dept.id, "deleted": True}


# --- keys ------------------------------------------------------------------------------------
@router.get("/keys", summary="Everyone's API keys (never their secrets)")
async def list_keys(services: ServicesDep) -> dict[str, Any]:
    return {"data": [k.to_json() for k in services.access.keys.list()]}


@router.post("/keys", status_code=201, summary="Create a key for a user or service account; shown only now")
async def create_key(body: NewKeyFor, request: Request, services: ServicesDep) -> dict[str, Any]:
    return await issue_key(request, services, services.access.accounts.user(body.user_id), body)


@router.delete("/keys/{key_id}", summary="Revoke any API key (at once)")
async def revoke_key(key_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    info = await run_in_threadpool(services.access.keys.revoke, key_id[:64])
    record_action(request, "key.revoke", key=info.id, owner=info.username)
    return info.to_json()


# --- usage and audit -------------------------------------------------------------------------
@router.get("/usage", summary="Requests and tokens by user, key, model and day")
async def usage(request: Request, services: ServicesDep, since: SinceQuery = "7d",
                group_by: Annotated[str, Query(pattern=r"^(day|user|key|model)(,(day|user|key|model))*$")] = "day,user,model",
                ) -> dict[str, Any]:  # fmt: skip
    await run_in_threadpool(trail(request.app).flush)  # count what this server queued a moment ago
    rows = await run_in_threadpool(lambda: services.access.usage.summary(since=since_ts(since),
                                                                       group_by=tuple(group_by.split(","))))  # fmt: skip
    return {"data": [r.to_json() for r in rows]}


@router.get("/audit", summary="Audit records, newest first; filter by period, actor and action")
async def audit(request: Request, services: ServicesDep, since: SinceQuery = "7d",
                actor: Annotated[str | None, Query(max_length=100)] = None,
                action: Annotated[str | None, Query(max_length=100)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                before: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:  # fmt: skip
    await run_in_threadpool(trail(request.app).flush)  # include what this server queued a moment ago
    records = await run_in_threadpool(lambda: services.access.audit.query(
        since=since_ts(since), until=None, actor=actor or None, action=action or None, limit=limit,
        before_seq=before))  # fmt: skip
    data = [r.to_json() for r in records]
    return {"data": data, "next_before": data[-1]["seq"] if len(data) == limit else None}


@router.get("/audit/export", summary="The audit log as JSON lines or CSV")
async def export_audit(request: Request, services: ServicesDep, since: SinceQuery = "7d",
                       format: Literal["jsonl", "csv"] = "jsonl") -> Response:  # fmt: skip
    await run_in_threadpool(trail(request.app).flush)
    out = io.StringIO()
    count = await run_in_threadpool(
        lambda: services.access.audit.export(out, since=since_ts(since), fmt=format)
    )
    record_action(request, "audit.export", records=count, format=format)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson; charset=utf-8"
    name = f"bendi-audit.{'csv' if format == 'csv' else 'jsonl'}"
    return Response(out.getvalue(), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


@router.get("/audit/verify", summary="Check the audit log's hash chain")
async def verify_audit(request: Request, services: ServicesDep) -> dict[str, Any]:
    await run_in_threadpool(trail(request.app).flush)
    verdict = await run_in_threadpool(services.access.audit.verify)
    return {"ok": verdict.ok, "records": verdict.records, "first_bad_seq": verdict.first_bad_seq,
            "reason": verdict.reason}  # fmt: skip
