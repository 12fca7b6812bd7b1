"""Principal: who is asking (a local user with no accounts, a signed-in user, an API key)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "member", "kb-editor"]
Scope = Literal["inference", "kb:write", "admin"]
ROLES: tuple[Role, ...] = ("admin", "member", "kb-editor")
SCOPES: tuple[Scope, ...] = ("inference", "kb:write", "admin")
ALL_SCOPES: frozenset[str] = frozenset(SCOPES)
LOCAL_OWNER = "local"  # owner id of conversations made in single-user mode


@dataclass(frozen=True)
class Principal:
    kind: Literal["local", "user", "legacy_key"]
    user_id: str | None
    username: str
    role: Role
    departments: frozenset[str] = frozenset()
    scopes: frozenset[str] = ALL_SCOPES
    key_id: str | None = None
    session_id: str | None = None
    must_change_password: bool = False  # a generated password: nothing but changing it until then

    @staticmethod
    def local() -> Principal:
        """Single-user mode: the person at this machine, with every right."""
        return Principal("local", None, LOCAL_OWNER, "admin")

    @staticmethod
    def legacy_key() -> Principal:
        """The one `--api-key` of single-user days: still works, as an administrator."""
        return Principal("legacy_key", None, "admin-key", "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and "admin" in self.scopes

    def may(self, scope: str) -> bool:
        """Whether the credential carries `scope` (a key's scopes nest: admin > kb:write > inference)."""
        if scope == "admin":
            return self.is_admin
        if scope == "kb:write":
            return "kb:write" in self.scopes or "admin" in self.scopes
        return bool(self.scopes)

    @property
    def owner_id(self) -> str:
        """The owner recorded on things this principal creates (conversations)."""
        return self.user_id or LOCAL_OWNER

    @property
    def audit_name(self) -> str:
        return self.username
