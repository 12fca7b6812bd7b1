"""The audit values (event, stored record, verdict) and how an event maps to the stored columns."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bendi.access.audit_chain import COLUMNS, canonical_json, json_ready, optional_text, storable_text


@dataclass(frozen=True)
class AuditEvent:
    """What happened; `detail` never holds secrets (prompt/answer text only when the settings say so)."""

    action: str
    actor: str = ""
    user_id: str | None = None
    key_id: str | None = None
    address: str = ""
    method: str = ""
    route: str = ""
    status: int = 0
    model: str | None = None
    kb: str | None = None
    documents: tuple[str, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    """One stored record: the event's fields, flat, with its place in the chain."""

    seq: int
    ts: float
    action: str
    actor: str
    user_id: str | None
    key_id: str | None
    address: str
    method: str
    route: str
    status: int
    model: str | None
    kb: str | None
    documents: tuple[str, ...]
    prompt_tokens: int
    completion_tokens: int
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str

    @property
    def event(self) -> AuditEvent:
        return AuditEvent(
            self.action, self.actor, self.user_id, self.key_id, self.address, self.method, self.route,
            self.status, self.model, self.kb, self.documents, self.prompt_tokens, self.completion_tokens,
            self.detail,
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in COLUMNS}
        out["time"] = _iso(self.ts)
        out["documents"] = list(self.documents)
        out["detail"] = dict(self.detail)
        out["prev_hash"], out["hash"] = self.prev_hash, self.hash
        return out


@dataclass(frozen=True)
class AuditVerdict:
    ok: bool
    records: int
    first_bad_seq: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def stored_values(event: AuditEvent) -> dict[str, Any]:
    """The event as the columns store it (text made encodable, documents and detail as JSON)."""
    text, maybe = storable_text, optional_text
    return {
        "action": text(event.action), "actor": text(event.actor), "user_id": maybe(event.user_id),
        "key_id": maybe(event.key_id), "address": text(event.address), "method": text(event.method),
        "route": text(event.route), "status": int(event.status), "model": maybe(event.model),
        "kb": maybe(event.kb), "documents": text(canonical_json([text(d) for d in event.documents])),
        "prompt_tokens": int(event.prompt_tokens), "completion_tokens": int(event.completion_tokens),
        "detail": text(canonical_json(json_ready(event.detail))),
    }  # fmt: skip


def record_from_row(row: Mapping[str, Any]) -> AuditRecord:
    return AuditRecord(
        row["seq"], row["ts"], row["action"], row["actor"], row["user_id"], row["key_id"], row["address"],
        row["method"], row["route"], row["status"], row["model"], row["kb"],
        tuple(_loads(row["documents"], [])), row["prompt_tokens"], row["completion_tokens"],
        _loads(row["detail"], {}), row["prev_hash"], row["hash"],
    )  # fmt: skip


def _loads(text: Any, empty: Any) -> Any:
    """Stored JSON; a damaged (tampered) cell is shown as it is rather than failing the whole page."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"unreadable": str(text)} if isinstance(empty, dict) else [str(text)]
    return value if isinstance(value, type(empty)) else empty


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
