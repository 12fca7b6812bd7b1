"""Web sessions: a random cookie value (stored only as its hash), a CSRF token, inactivity expiry."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from bendi.access.db import AccessDB

# Refresh last_seen_at at most this often: a write per request would cost more than the check.
_TOUCH_EVERY_S = 30.0


@dataclass(frozen=True)
class WebSession:
    id: str  # hash of the cookie value
    user_id: str
    csrf_token: str
    created_at: float
    last_seen_at: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, db: AccessDB, *, idle_s: float, max_age_s: float) -> None:
        self._db = db
        self.idle_s = idle_s
        self.max_age_s = max_age_s

    def create(self, user_id: str, address: str) -> tuple[str, WebSession]:
        """A new session; returns the cookie value (never stored) and the session."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = WebSession(_digest(token), user_id, secrets.token_urlsafe(24), now, now)
        with self._db.write() as db:
            # Expired sessions are swept here rather than by a timer.
            db.execute("DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?",
                       (now - self.idle_s, now - self.max_age_s))  # fmt: skip
            db.execute(
                "INSERT INTO sessions (id, user_id, csrf_token, created_at, last_seen_at, address)"
                " VALUES (?,?,?,?,?,?)", (session.id, user_id, session.csrf_token, now, now, address[:64]),
            )  # fmt: skip
        return token, session

    def resolve(self, token: str, *, now: float | None = None) -> WebSession | None:
        """The live session for a cookie value, sliding its inactivity deadline; None when gone."""
        if not token or len(token) > 200:
            return None
        now = now or time.time()
        row = (
            self._db.read()
            .execute(
                "SELECT s.* FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ? AND u.disabled = 0",
                (_digest(token),),
            )
            .fetchone()
        )
        if row is None or row["last_seen_at"] < now - self.idle_s or row["created_at"] < now - self.max_age_s:
            return None
        if now - row["last_seen_at"] > _TOUCH_EVERY_S:
            with self._db.write() as db:
                db.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (now, row["id"]))
        return WebSession(row["id"], row["user_id"], row["csrf_token"], row["created_at"], now)

    def end(self, session_id: str) -> None:
        with self._db.write() as db:
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def end_all(self, user_id: str, *, keep: str | None = None) -> None:
        with self._db.write() as db:
            db.execute("DELETE FROM sessions WHERE user_id = ? AND id IS NOT ?", (user_id, keep))
