"""AccessDB: the accounts database (SQLite, WAL), its schema and forward migrations."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bendi.core.errors import BendiError

SCHEMA_VERSION = 1

# Version 1. A later version adds a function to MIGRATIONS; data written by a newer bendi is refused.
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,          -- NFKC + casefold: what login compares
  display_name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'member', 'kb-editor')),
  password_hash TEXT,                     -- NULL for LDAP users
  must_change_password INTEGER NOT NULL DEFAULT 0,
  disabled INTEGER NOT NULL DEFAULT 0,
  source TEXT NOT NULL DEFAULT 'local' CHECK (source IN ('local', 'ldap')),
  requests_per_minute INTEGER,
  tokens_per_day INTEGER,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS departments (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  name_key TEXT NOT NULL UNIQUE,          -- NFKC + casefold of name
  created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS memberships (
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  department_id TEXT NOT NULL REFERENCES departments(id) ON DELETE CASCADE,
  PRIMARY KEY (user_id, department_id)
);
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  scope TEXT NOT NULL CHECK (scope IN ('inference', 'kb:write', 'admin')),
  secret_hash TEXT NOT NULL,
  prefix TEXT NOT NULL,
  requests_per_minute INTEGER,
  tokens_per_day INTEGER,
  created_at REAL NOT NULL,
  expires_at REAL,
  revoked_at REAL,
  last_used_at REAL
);
CREATE INDEX IF NOT EXISTS api_keys_by_user ON api_keys(user_id);
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,                    -- sha256 of the cookie value, never the value itself
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  csrf_token TEXT NOT NULL,
  created_at REAL NOT NULL,
  last_seen_at REAL NOT NULL,
  address TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(user_id);
CREATE TABLE IF NOT EXISTS kb_owners (
  kb TEXT PRIMARY KEY,
  owner_user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
  created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kb_grants (
  id TEXT PRIMARY KEY,
  kb TEXT NOT NULL,
  subject_kind TEXT NOT NULL CHECK (subject_kind IN ('user', 'department')),
  subject_id TEXT NOT NULL,
  permission TEXT NOT NULL CHECK (permission IN ('read', 'write')),
  created_at REAL NOT NULL,
  UNIQUE (kb, subject_kind, subject_id)
);
CREATE INDEX IF NOT EXISTS kb_grants_by_subject ON kb_grants(subject_kind, subject_id);
"""


class NewerDataError(BendiError):
    http_status = 500
    code = "data_from_newer_version"


class AccessDB:
    """One SQLite file; a connection per thread (the gateway calls it from the event loop and threads).

    Every call sees what another process (the CLI) committed a moment ago: nothing is cached here.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection().execute("PRAGMA journal_mode=WAL")
        with self.write() as db:
            self._migrate(db)

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def read(self) -> sqlite3.Connection:
        """A connection for reads (autocommit: each statement sees the latest committed data)."""
        return self._connection()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE, so concurrent writers queue instead of failing)."""
        db = self._connection()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row["value"]) if row else 0
        if version > SCHEMA_VERSION:
            raise NewerDataError(
                f"{self.path} was written by a newer bendi (schema {version}; this one knows {SCHEMA_VERSION}). "
                "Upgrade bendi, or restore a backup made by this version."
            )
        if version < 1:
            for statement in _SCHEMA_V1.split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )

    def get_meta(self, key: str) -> str | None:
        row = self.read().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
