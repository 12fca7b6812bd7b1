"""API keys: made for a user, shown once, stored as a SHA-256 hash, scoped, expiring, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from bendi.access.accounts import User
from bendi.access.db import AccessDB
from bendi.access.principal import SCOPES, Scope
from bendi.core.errors import NotFoundError, UserInputError
from bendi.core.names import display_name

KEY_PREFIX = "bendi_"
MAX_EXPIRY_DAYS = 3650


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    user_id: str
    username: str
    name: str
    scope: Scope
    prefix: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    requests_per_minute: int | None = None
    tokens_per_day: int | None = None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "user_id": self.user_id, "username": self.username, "name": self.name,
                "scope": self.scope, "prefix": self.prefix, "created_at": self.created_at,
                "expires_at": self.expires_at, "revoked_at": self.revoked_at, "last_used_at": self.last_used_at,
                "active": self.active(time.time())}  # fmt: skip


@dataclass(frozen=True)
class ResolvedKey:
    """A presented key that matched an active key of an enabled user."""

    key: ApiKeyInfo
    user_id: str


def check_scope(scope: str) -> Scope:
    for known in SCOPES:
        if scope == known:
            return known
    raise UserInputError(f"Unknown key scope {scope!r}: use one of {', '.join(SCOPES)}.")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(presented: str) -> tuple[str, str] | None:
    """`bendi_<id>_<secret>` -> (id, whole key); None for anything else."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    rest = presented[len(KEY_PREFIX) :]
    key_id, sep, secret = rest.partition("_")
    if not sep or not key_id.isalnum() or len(secret) < 20:
        return None
    return key_id, presented


class ApiKeys:
    def __init__(self, db: AccessDB) -> None:
        self._db = db

    def create(
        self, user: User, *, name: str, scope: str, expires_days: float | None = None
    ) -> tuple[str, ApiKeyInfo]:
        """A new key for `user`; the secret is returned here once and never stored."""
        checked = check_scope(scope)
        if checked == "admin" and user.role != "admin":
            raise UserInputError(
                f"Only administrators can hold admin keys; {user.username} is a {user.role}."
            )
        label = display_name(name, what="key name")
        if expires_days is not None and not 0 < expires_days <= MAX_EXPIRY_DAYS:
            raise UserInputError(f"A key expires after 1 to {MAX_EXPIRY_DAYS} days (or never).")
        key_id = secrets.token_hex(6)
        secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        now = time.time()
        expires_at = now + expires_days * 86400 if expires_days else None
        with self._db.write() as db:
            db.execute(
                "INSERT INTO api_keys (id, user_id, name, scope, secret_hash, prefix, created_at, expires_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (key_id, user.id, label, checked, _digest(secret), f"{KEY_PREFIX}{key_id}_", now, expires_at),
            )  # fmt: skip
        return secret, self.get(key_id)

    def resolve(self, presented: str, *, now: float | None = None) -> ResolvedKey | None:
        """The active key of an enabled user matching `presented`, else None (constant-time compare)."""
        parts = split_key(presented)
        if parts is None:
            return None
        key_id, whole = parts
        row = self._db.read().execute(
            "SELECT k.*, u.username AS username, u.disabled AS user_disabled FROM api_keys k"
            " JOIN users u ON u.id = k.user_id WHERE k.id = ?", (key_id,),
        ).fetchone()  # fmt: skip
        if row is None or not hmac.compare_digest(row["secret_hash"], _digest(whole)):
            return None
        info = _info(row)
        if row["user_disabled"] or not info.active(now or time.time()):
            return None
        return ResolvedKey(info, row["user_id"])

    def touch(self, key_id: str, now: float) -> None:
        """Record use, at most once a minute per key (a write per request would cost more than the check)."""
        with self._db.write() as db:
            db.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
                (now, key_id, now - 60),
            )

    def get(self, key_id: str) -> ApiKeyInfo:
        row = (
            self._db.read()
            .execute(
                "SELECT k.*, u.username AS username FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?",
                (key_id,),
            )
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"There is no API key {key_id!r}.")
        return _info(row)

    def list(self, user_id: str | None = None) -> list[ApiKeyInfo]:
        sql = "SELECT k.*, u.username AS username FROM api_keys k JOIN users u ON u.id = k.user_id"
        args: tuple[str, ...] = ()
        if user_id is not None:
            sql += " WHERE k.user_id = ?"
            args = (user_id,)
        rows = self._db.read().execute(sql + " ORDER BY k.created_at DESC", args).fetchall()
        return [_info(r) for r in rows]

    def revoke(self, key_id: str, *, owner_id: str | None = None) -> ApiKeyInfo:
        """Revoke at once; with `owner_id`, only that user's key (others' keys read as missing)."""
        key = self.get(key_id)
        if owner_id is not None and key.user_id != owner_id:
            raise NotFoundError(f"There is no API key {key_id!r}.")
        with self._db.write() as db:
            db.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (time.time(), key_id)
            )
        return self.get(key_id)

    def revoke_all(self, user_id: str) -> None:
        with self._db.write() as db:
            db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                (time.time(), user_id),
            )


def _info(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(row["id"], row["user_id"], row["username"], row["name"], check_scope(row["scope"]),
                      row["prefix"], row["created_at"], row["expires_at"], row["revoked_at"], row["last_used_at"],
                      row["requests_per_minute"], row["tokens_per_day"])  # fmt: skip
