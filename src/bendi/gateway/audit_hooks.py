"""What the gateway writes to the audit log and the usage ledger, and how handlers add to a record.

A handler notes the model, knowledge base, cited documents and token counts of its request with
`note(request, ...)`; the authentication middleware writes one record per request when the response
has been sent. Named events (sign-ins, key creation, permission changes) go through `record_action`.
Prompts and answers are recorded only when settings.audit_record_text is on.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import Scope

from bendi.access.principal import Principal
from bendi.gateway.audit_trail import AuditTrail

MAX_DETAIL_TEXT = 20_000
PRUNE_EVERY_S = 86_400.0


def trail(app: FastAPI) -> AuditTrail:
    found: AuditTrail | None = getattr(app.state, "audit_trail", None)
    if found is None:
        found = AuditTrail()
        app.state.audit_trail = found
        app.state.services._closers.append(found)
    return found


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def note(request: Request, **fields: Any) -> None:
    """Add fields (model, kb, documents, prompt_tokens, completion_tokens, text) to this request's record."""
    notes: dict[str, Any] = request.scope.setdefault("state", {}).setdefault("audit", {})
    for name, value in fields.items():
        if name in ("prompt_tokens", "completion_tokens"):
            notes[name] = notes.get(name, 0) + int(value or 0)
        elif name == "documents":
            notes[name] = tuple(dict.fromkeys((*notes.get(name, ()), *value)))
        elif name == "text" and notes.get("text"):
            continue  # the question as asked wins over the prompt later built from it
        elif value is not None:
            notes[name] = value


def record_request(app: FastAPI, state: dict[str, Any], scope: Scope, template: str, status: int) -> None:
    from bendi.access.audit import AuditEvent

    principal = state.get("principal")
    notes = state.get("audit", {})
    detail: dict[str, Any] = {}
    if app.state.services.settings.audit_record_text:
        for field in ("text", "answer"):
            if notes.get(field):
                detail[field] = str(notes[field])[:MAX_DETAIL_TEXT]
    event = AuditEvent(
        "http.request", **_who(principal), address=client_address(scope), method=scope["method"], route=template,
        status=status, model=notes.get("model"), kb=notes.get("kb"), documents=tuple(notes.get("documents", ())),
        prompt_tokens=int(notes.get("prompt_tokens", 0)), completion_tokens=int(notes.get("completion_tokens", 0)),
        detail=detail,
    )  # fmt: skip
    _append(app, event, time.time())


def record_action(request: Request, action: str, *, actor: str | None = None, status: int = 200,
                  **detail: Any) -> None:  # fmt: skip
    """A named event (sign-in, key created, grant changed...) beside the request's own record.

    Team mode only: one person on their own machine keeps no audit log."""
    from bendi.access.audit import AuditEvent

    if not request.app.state.services.access.team_mode:
        return

    principal = request.scope.get("state", {}).get("principal")
    who = _who(principal)
    if actor is not None:
        who["actor"] = actor
    route = request.scope.get("route")
    event = AuditEvent(action, **who, address=client_address(request.scope), method=request.method,
                       route=str(getattr(route, "path", request.url.path)), status=status,
                       detail={k: v for k, v in detail.items() if v is not None})  # fmt: skip
    _append(request.app, event, time.time())


def record_usage(request: Request, model: str, prompt_tokens: int, completion_tokens: int) -> None:
    """Count a finished generation for quotas and the usage report, and note it on the audit record."""
    note(request, model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    state = request.scope.get("state", {})
    principal = state.get("principal")
    services = request.app.state.services
    if not isinstance(principal, Principal) or not state.get("team_mode", services.access.team_mode):
        return
    usage = services.access.usage
    trail(request.app).submit(lambda: usage.record(
        user_id=principal.user_id, username=principal.username, key_id=principal.key_id, model=model,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))  # fmt: skip


def _who(principal: object) -> dict[str, Any]:
    if not isinstance(principal, Principal):
        return {"actor": "", "user_id": None, "key_id": None}
    return {"actor": principal.username, "user_id": principal.user_id, "key_id": principal.key_id}


def _append(app: FastAPI, event: Any, ts: float) -> None:
    audit = app.state.services.access.audit
    trail(app).append(audit, event, ts)
    # Retention: records older than settings.audit_retention_days go, checked once a day.
    if ts - getattr(app.state, "audit_pruned_at", 0.0) > PRUNE_EVERY_S:
        app.state.audit_pruned_at = ts
        trail(app).submit(audit.prune)
