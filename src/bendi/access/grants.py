"""Knowledge-base ownership and access lists (a department or a user may read or write a base)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from bendi.access.db import AccessDB
from bendi.core.errors import NotFoundError, UserInputError

Permission = Literal["read", "write"]
SubjectKind = Literal["user", "department"]


@dataclass(frozen=True)
class Grant:
    id: str
    kb: str
    subject_kind: SubjectKind
    subject_id: str
    permission: Permission
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kb": self.kb, "subject_kind": self.subject_kind, "subject_id": self.subject_id,
                "permission": self.permission, "created_at": self.created_at}  # fmt: skip


def check_permission(raw: str) -> Permission:
    if raw == "read":
        return "read"
    if raw == "write":
        return "write"
    raise UserInputError(f"A permission is 'read' or 'write', not {raw!r}.")


class Grants:
    def __init__(self, db: AccessDB) -> None:
        self._db = db

    def owner(self, kb: str) -> str | None:
        row = self._db.read().execute("SELECT owner_user_id FROM kb_owners WHERE kb = ?", (kb,)).fetchone()
        return str(row["owner_user_id"]) if row and row["owner_user_id"] else None

    def set_owner(self, kb: str, user_id: str | None) -> None:
        with self._db.write() as db:
            db.execute(
                "INSERT INTO kb_owners (kb, owner_user_id, created_at) VALUES (?,?,?) "
                "ON CONFLICT(kb) DO UPDATE SET owner_user_id = excluded.owner_user_id",
                (kb, user_id, time.time()),
            )

    def grant(self, kb: str, subject_kind: SubjectKind, subject_id: str, permission: str) -> Grant:
        """Give (or change) one subject's permission on `kb`."""
        checked = check_permission(permission)
        with self._db.write() as db:
            db.execute(
                "INSERT INTO kb_grants (id, kb, subject_kind, subject_id, permission, created_at) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT(kb, subject_kind, subject_id) DO UPDATE SET permission = excluded.permission",
                (uuid.uuid4().hex[:12], kb, subject_kind, subject_id, checked, time.time()),
            )  # fmt: skip
            row = db.execute(
                "SELECT * FROM kb_grants WHERE kb = ? AND subject_kind = ? AND subject_id = ?",
                (kb, subject_kind, subject_id),
            ).fetchone()
        return _grant(row)

    def revoke(self, kb: str, grant_id: str) -> Grant:
        row = (
            self._db.read()
            .execute("SELECT * FROM kb_grants WHERE id = ? AND kb = ?", (grant_id, kb))
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"Knowledge base {kb} has no access entry {grant_id!r}.")
        with self._db.write() as db:
            db.execute("DELETE FROM kb_grants WHERE id = ?", (grant_id,))
        return _grant(row)

    def revoke_subject(self, kb: str, subject_kind: SubjectKind, subject_id: str) -> bool:
        with self._db.write() as db:
            gone = db.execute(
                "DELETE FROM kb_grants WHERE kb = ? AND subject_kind = ? AND subject_id = ?",
                (kb, subject_kind, subject_id),
            ).rowcount
        return bool(gone)

    def grants(self, kb: str) -> list[Grant]:
        rows = (
            self._db.read()
            .execute("SELECT * FROM kb_grants WHERE kb = ? ORDER BY created_at", (kb,))
            .fetchall()
        )
        return [_grant(r) for r in rows]

    def permissions_for(self, user_id: str, departments: frozenset[str]) -> dict[str, Permission]:
        """Every base this user may use, with the strongest permission any of their grants gives."""
        subjects = [("user", user_id)] + [("department", d) for d in sorted(departments)]
        clause = " OR ".join("(subject_kind = ? AND subject_id = ?)" for _ in subjects)
        args = [part for subject in subjects for part in subject]
        rows = (
            self._db.read().execute(f"SELECT kb, permission FROM kb_grants WHERE {clause}", args).fetchall()
        )
        found: dict[str, Permission] = {}
        for row in rows:
            if found.get(row["kb"]) != "write":
                found[row["kb"]] = check_permission(row["permission"])
        owned = (
            self._db.read().execute("SELECT kb FROM kb_owners WHERE owner_user_id = ?", (user_id,)).fetchall()
        )
        for row in owned:
            found[row["kb"]] = "write"
        return found

    def forget(self, kb: str) -> None:
        """A deleted base leaves no access entries behind (a new base of the same name starts clean)."""
        with self._db.write() as db:
            db.execute("DELETE FROM kb_grants WHERE kb = ?", (kb,))
            db.execute("DELETE FROM kb_owners WHERE kb = ?", (kb,))


def _grant(row: Any) -> Grant:
    kind: SubjectKind = "user" if row["subject_kind"] == "user" else "department"
    return Grant(row["id"], row["kb"], kind, row["subject_id"], check_permission(row["permission"]),
                 row["created_at"])  # fmt: skip
