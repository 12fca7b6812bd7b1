"""Accounts: users, departments and who belongs where (administrators manage them; LDAP syncs them)."""

from __future__ import annotations

import time
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bendi.access.db import AccessDB
from bendi.access.passwords import check_strength, hash_password, one_time_password
from bendi.access.principal import ROLES, Role
from bendi.core.errors import AlreadyExistsError, NotFoundError, UserInputError
from bendi.core.names import display_name

MAX_USERNAME_CHARS = 64


@dataclass(frozen=True)
class Department:
    id: str
    name: str
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at}


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    role: Role
    disabled: bool
    must_change_password: bool
    source: str
    created_at: float
    requests_per_minute: int | None = None
    tokens_per_day: int | None = None
    departments: tuple[Department, ...] = field(default=())

    @property
    def department_ids(self) -> frozenset[str]:
        return frozenset(d.id for d in self.departments)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "display_name": self.display_name, "role": self.role,
                "disabled": self.disabled, "must_change_password": self.must_change_password,
                "source": self.source, "created_at": self.created_at,
                "requests_per_minute": self.requests_per_minute, "tokens_per_day": self.tokens_per_day,
                "departments": [d.to_json() for d in self.departments]}  # fmt: skip


def username_key(raw: str) -> str:
    """What login compares: NFKC-normalized, trimmed and case-folded."""
    return unicodedata.normalize("NFKC", raw).strip().casefold()


def check_username(raw: str) -> str:
    name = unicodedata.normalize("NFKC", raw).strip()
    if not name or len(name) > MAX_USERNAME_CHARS:
        raise UserInputError(f"A username must be 1 to {MAX_USERNAME_CHARS} characters.")
    if any(ch.isspace() or not ch.isprintable() or ch in "/\\:@'\"<>" for ch in name):
        raise UserInputError(
            f"The username {name!r} is not allowed: no spaces, control characters or / \\ : @ ' \" < >."
        )
    display_name(name, what="username", max_chars=MAX_USERNAME_CHARS)  # refuses look-alike mixes
    return name


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise UserInputError(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")


def _check_limit(value: int | None, what: str) -> int | None:
    if value is None or value == 0:
        return None
    if value < 0 or value > 10**12:
        raise UserInputError(f"{what} must be between 0 (no limit) and 10^12.")
    return int(value)


class Accounts:
    def __init__(self, db: AccessDB, *, min_password_chars: int = 10) -> None:
        self._db = db
        self.min_password_chars = min_password_chars

    # --- users -------------------------------------------------------------------------------
    def count_admins(self) -> int:
        row = (
            self._db.read()
            .execute("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0")
            .fetchone()
        )
        return int(row[0])

    def any_users(self) -> bool:
        return self._db.read().execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    def create_user(self, username: str, *, role: str = "member", password: str | None = None,
                    display: str | None = None, departments: Sequence[str] = (), source: str = "local",
                    must_change_password: bool | None = None) -> tuple[User, str | None]:  # fmt: skip
        """Create a user; returns it and the generated one-time password when none was given."""
        name = check_username(username)
        checked_role = check_role(role)
        shown = display_name(display, what="display name") if display else name
        generated = None
        if source == "local":
            if password is None:
                generated = password = one_time_password()
            check_strength(password, min_chars=self.min_password_chars)
        department_ids = [self.department(d).id for d in departments]
        must_change = generated is not None if must_change_password is None else must_change_password
        now = time.time()
        user_id = uuid.uuid4().hex
        with self._db.write() as db:
            if db.execute("SELECT 1 FROM users WHERE username = ?", (username_key(name),)).fetchone():
                raise AlreadyExistsError(f"A user named {name} exists already.")
            db.execute(
                "INSERT INTO users (id, username, display_name, role, password_hash, must_change_password,"
                " source, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (user_id, username_key(name), shown, checked_role,
                 hash_password(password) if password is not None else None, int(must_change), source, now, now),
            )  # fmt: skip
            db.executemany(
                "INSERT OR IGNORE INTO memberships (user_id, department_id) VALUES (?, ?)",
                [(user_id, d) for d in department_ids],
            )
        return self.user(user_id), generated

    def user(self, user_id: str) -> User:
        row = self._db.read().execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no user with id {user_id!r}.")
        return self._user(row)

    def find_user(self, ref: str) -> User:
        """A user by id or by username (as typed at login)."""
        db = self._db.read()
        row = db.execute(
            "SELECT * FROM users WHERE id = ? OR username = ?", (ref, username_key(ref))
        ).fetchone()
        if row is None:
            raise NotFoundError(f"There is no user {ref!r}. See `bendi admin user list`.")
        return self._user(row)

    def user_for_login(self, username: str) -> tuple[User, str | None] | None:
        """The user and their password hash, or None when there is no such user."""
        row = (
            self._db.read()
            .execute("SELECT * FROM users WHERE username = ?", (username_key(username),))
            .fetchone()
        )
        return (self._user(row), row["password_hash"]) if row else None

    def users(self) -> list[User]:
        rows = self._db.read().execute("SELECT * FROM users ORDER BY username").fetchall()
        return [self._user(r) for r in rows]

    def update_user(self, user_id: str, *, display: str | None = None, role: str | None = None,
                    disabled: bool | None = None, departments: Sequence[str] | None = None,
                    requests_per_minute: int | None = -1, tokens_per_day: int | None = -1) -> User:  # fmt: skip
        """Change what is given (-1 for the limits means "leave as is"); refuses to drop the last admin."""
        current = self.user(user_id)
        changes: dict[str, Any] = {}
        if display is not None:
            changes["display_name"] = display_name(display, what="display name")
        if role is not None:
            changes["role"] = check_role(role)
        if disabled is not None:
            changes["disabled"] = int(disabled)
        if requests_per_minute != -1:
            changes["requests_per_minute"] = _check_limit(requests_per_minute, "Requests per minute")
        if tokens_per_day != -1:
            changes["tokens_per_day"] = _check_limit(tokens_per_day, "Tokens per day")
        loses_admin = (
            current.role == "admin"
            and not current.disabled
            and (changes.get("role", "admin") != "admin" or changes.get("disabled", 0))
        )
        if loses_admin and self.count_admins() <= 1:
            raise UserInputError("This is the last active administrator; make another one first.")
        department_ids = [self.department(d).id for d in departments] if departments is not None else None
        with self._db.write() as db:
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)  # columns are fixed above
                db.execute(f"UPDATE users SET {assignments}, updated_at = ? WHERE id = ?",
                           (*changes.values(), time.time(), user_id))  # fmt: skip
            if department_ids is not None:
                db.execute("DELETE FROM memberships WHERE user_id = ?", (user_id,))
                db.executemany("INSERT OR IGNORE INTO memberships (user_id, department_id) VALUES (?, ?)",
                               [(user_id, d) for d in department_ids])  # fmt: skip
            if changes.get("disabled"):
                db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        return self.user(user_id)

    def set_password(self, user_id: str, password: str | None, *, must_change: bool,
                     keep_session: str | None = None) -> str | None:  # fmt: skip
        """Set (or generate, when None) a password; every other session of the user ends. Returns a
        generated one."""
        generated = None
        if password is None:
            generated = password = one_time_password()
        check_strength(password, min_chars=self.min_password_chars)
        self.user(user_id)
        with self._db.write() as db:
            db.execute(
                "UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ? WHERE id = ?",
                (hash_password(password), int(must_change), time.time(), user_id),
            )
            db.execute("DELETE FROM sessions WHERE user_id = ? AND id IS NOT ?", (user_id, keep_session))
        return generated

    def rehash(self, user_id: str, password: str) -> None:
        with self._db.write() as db:
            db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (hash_password(password), user_id))

    def delete_user(self, user_id: str) -> None:
        user = self.user(user_id)
        if user.role == "admin" and not user.disabled and self.count_admins() <= 1:
            raise UserInputError("This is the last active administrator; make another one first.")
        with self._db.write() as db:
            db.execute("DELETE FROM users WHERE id = ?", (user_id,))  # keys, sessions, memberships cascade

    def sync_ldap_user(self, username: str, display: str, role: str, departments: Iterable[str]) -> User:
        """Create or refresh the local record of an LDAP user; departments named by LDAP are created."""
        department_ids = [self.ensure_department(name).id for name in departments]
        found = self.user_for_login(username)
        if found is None:
            user, _ = self.create_user(username, role=role, display=display, source="ldap")
        else:
            user = found[0]
            if user.source != "ldap":
                raise UserInputError(
                    f"A local account named {username} exists; an LDAP login cannot take it over."
                )
        return self.update_user(user.id, display=display, role=role, departments=department_ids)

    # --- departments --------------------------------------------------------------------------
    def create_department(self, name: str) -> Department:
        shown = display_name(name, what="department name")
        with self._db.write() as db:
            if db.execute("SELECT 1 FROM departments WHERE name_key = ?", (username_key(shown),)).fetchone():
                raise AlreadyExistsError(f"A department named {shown} exists already.")
            dept_id = uuid.uuid4().hex[:12]
            db.execute("INSERT INTO departments (id, name, name_key, created_at) VALUES (?,?,?,?)",
                       (dept_id, shown, username_key(shown), time.time()))  # fmt: skip
        return self.department(dept_id)

    def ensure_department(self, name: str) -> Department:
        try:
            return self.department(name)
        except NotFoundError:
            return self.create_department(name)

    def department(self, ref: str) -> Department:
        """A department by id or by name (NFKC, case-insensitive)."""
        row = (
            self._db.read()
            .execute("SELECT * FROM departments WHERE id = ? OR name_key = ?", (ref, username_key(ref)))
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"There is no department {ref!r}. See `bendi admin department list`.")
        return Department(row["id"], row["name"], row["created_at"])

    def departments(self) -> list[Department]:
        rows = self._db.read().execute("SELECT * FROM departments ORDER BY name").fetchall()
        return [Department(r["id"], r["name"], r["created_at"]) for r in rows]

    def delete_department(self, ref: str) -> None:
        dept = self.department(ref)
        with self._db.write() as db:
            db.execute("DELETE FROM departments WHERE id = ?", (dept.id,))
            db.execute(
                "DELETE FROM kb_grants WHERE subject_kind = 'department' AND subject_id = ?", (dept.id,)
            )

    # --- rows ---------------------------------------------------------------------------------
    def _user(self, row: Any) -> User:
        rows = self._db.read().execute(
            "SELECT d.* FROM departments d JOIN memberships m ON m.department_id = d.id WHERE m.user_id = ?"
            " ORDER BY d.name", (row["id"],),
        ).fetchall()  # fmt: skip
        departments = tuple(Department(r["id"], r["name"], r["created_at"]) for r in rows)
        role = check_role(row["role"])
        return User(row["id"], row["username"], row["display_name"], role, bool(row["disabled"]),
                    bool(row["must_change_password"]), row["source"], row["created_at"],
                    row["requests_per_minute"], row["tokens_per_day"], departments)  # fmt: skip
