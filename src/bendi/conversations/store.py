"""ConversationStore: conversations and their messages in one SQLite file (WAL), safe across threads."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bendi.core.errors import NotFoundError, UserInputError

MAX_TITLE_CHARS = 200
MAX_SYSTEM_PROMPT_CHARS = 32_000
MAX_MESSAGE_CHARS = 2_000_000
ROLES = ("system", "user", "assistant")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  model TEXT,
  system_prompt TEXT NOT NULL DEFAULT '',
  temperature REAL,
  context_tokens INTEGER,
  max_tokens INTEGER,
  knowledge_base TEXT,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL,
  owner TEXT NOT NULL DEFAULT 'local'
);
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY,
  conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  role TEXT NOT NULL,
  content TEXT NOT NULL,
  reasoning TEXT,
  citations TEXT,
  model TEXT,
  created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, seq);
CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations(updated_at DESC);
"""
# Whose conversations a call may touch: one owner id, or ALL_OWNERS (only where the organization lets
# administrators read everyone's). Every method takes it; there is no default.
ALL_OWNERS = None


@dataclass(frozen=True)
class Message:
    id: str
    role: str
    content: str
    reasoning: str | None = None
    citations: list[dict[str, Any]] | None = None
    model: str | None = None
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "content": self.content, "reasoning": self.reasoning,
                "citations": self.citations, "model": self.model, "created_at": self.created_at}  # fmt: skip


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    model: str | None
    system_prompt: str
    temperature: float | None
    context_tokens: int | None
    max_tokens: int | None
    knowledge_base: str | None
    created_at: float
    updated_at: float
    message_count: int = 0
    messages: tuple[Message, ...] = field(default=())

    def to_json(self, *, with_messages: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "title": self.title, "model": self.model, "system_prompt": self.system_prompt,
            "temperature": self.temperature, "context_tokens": self.context_tokens, "max_tokens": self.max_tokens,
            "knowledge_base": self.knowledge_base, "created_at": self.created_at,
            "updated_at": self.updated_at, "message_count": self.message_count,
        }  # fmt: skip
        if with_messages:
            out["messages"] = [m.to_json() for m in self.messages]
        return out


# Fields a client may set on a conversation, with their checks.
SETTABLE = (
    "title",
    "model",
    "system_prompt",
    "temperature",
    "context_tokens",
    "max_tokens",
    "knowledge_base",
)


def _check_settings(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(SETTABLE)
    if unknown:
        raise UserInputError(f"Unknown conversation field(s): {', '.join(sorted(unknown))}.")
    title = values.get("title")
    if title is not None and (not str(title).strip() or len(str(title)) > MAX_TITLE_CHARS):
        raise UserInputError(f"A title must be 1 to {MAX_TITLE_CHARS} characters.")
    if len(values.get("system_prompt") or "") > MAX_SYSTEM_PROMPT_CHARS:
        raise UserInputError(f"The system prompt is longer than {MAX_SYSTEM_PROMPT_CHARS} characters.")
    temperature = values.get("temperature")
    if temperature is not None and not 0.0 <= float(temperature) <= 2.0:
        raise UserInputError("Temperature must be between 0 and 2.")
    context = values.get("context_tokens")
    if context is not None and not 128 <= int(context) <= 1_048_576:
        raise UserInputError("The context size must be between 128 and 1048576 tokens.")
    max_tokens = values.get("max_tokens")
    if max_tokens is not None and not 1 <= int(max_tokens) <= 1_048_576:
        raise UserInputError("The answer length limit must be between 1 and 1048576 tokens.")
    return values


class ConversationStore:
    """One SQLite database; each call opens a short transaction (the gateway calls it from threads)."""

    def __init__(self, db_path: Path) -> None:
        self._path = db_path
        self._lock = threading.Lock()
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(conversations)")}
            if "max_tokens" not in columns:  # a database from before answer-length limits
                db.execute("ALTER TABLE conversations ADD COLUMN max_tokens INTEGER")
            if "owner" not in columns:  # a database from before accounts: it was the local user's
                db.execute("ALTER TABLE conversations ADD COLUMN owner TEXT NOT NULL DEFAULT 'local'")
            db.execute(
                "CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations(owner, updated_at DESC)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = sqlite3.connect(self._path, timeout=10.0)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys=ON")
            try:
                with db:
                    yield db
            finally:
                db.close()

    def create(self, owner: str, **values: Any) -> Conversation:
        values = _check_settings(values)
        now = time.time()
        conv_id = uuid.uuid4().hex
        with self._connect() as db:
            db.execute(
                "INSERT INTO conversations (id, title, model, system_prompt, temperature, context_tokens,"
                " max_tokens, knowledge_base, created_at, updated_at, owner) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (conv_id, (values.get("title") or "").strip() or "New chat", values.get("model"),
                 values.get("system_prompt") or "", values.get("temperature"), values.get("context_tokens"),
                 values.get("max_tokens"), values.get("knowledge_base"), now, now, owner),
            )  # fmt: skip
        return self.get(conv_id, owner)

    def update(self, conv_id: str, owner: str | None, **values: Any) -> Conversation:
        values = _check_settings(values)
        self.get(conv_id, owner)
        if values:
            if "title" in values:
                values["title"] = str(values["title"]).strip()
            if "system_prompt" in values and values["system_prompt"] is None:
                values["system_prompt"] = ""
            assignments = ", ".join(f"{name} = ?" for name in values)  # names come from SETTABLE only
            with self._connect() as db:
                db.execute(
                    f"UPDATE conversations SET {assignments}, updated_at = ? WHERE id = ?",
                    (*values.values(), time.time(), conv_id),
                )
        return self.get(conv_id, owner)

    def get(self, conv_id: str, owner: str | None) -> Conversation:
        """The conversation, if `owner` may see it; another owner's reads exactly like a missing one."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM conversations WHERE id = ?", (conv_id,)).fetchone()
            if row is None or (owner is not ALL_OWNERS and row["owner"] != owner):
                raise NotFoundError(
                    f"Conversation {conv_id!r} does not exist. List them with GET /v1/conversations."
                )
            rows = db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", (conv_id,)
            ).fetchall()
        messages = tuple(_message(r) for r in rows)
        return _conversation(row, len(messages), messages)

    def search(self, owner: str | None, *, query: str = "", limit: int = 200) -> list[Conversation]:
        """Newest first, `owner`'s only; `query` matches titles and message text (case-insensitive substring)."""
        sql = (
            "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS n "
            "FROM conversations c WHERE (? IS NULL OR c.owner = ?)"
        )
        args: list[Any] = [owner, owner]
        if query.strip():
            pattern = "%" + query.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            sql += (
                " AND (c.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m WHERE"
                " m.conversation_id = c.id AND m.content LIKE ? ESCAPE '\\'))"
            )
            args += [pattern, pattern]
        sql += " ORDER BY c.updated_at DESC LIMIT ?"
        args.append(max(1, min(limit, 1000)))
        with self._connect() as db:
            rows = db.execute(sql, args).fetchall()
        return [_conversation(r, int(r["n"]), ()) for r in rows]

    def delete(self, conv_id: str, owner: str | None) -> None:
        self.get(conv_id, owner)
        with self._connect() as db:
            deleted = db.execute("DELETE FROM conversations WHERE id = ?", (conv_id,)).rowcount
        if not deleted:
            raise NotFoundError(f"Conversation {conv_id!r} does not exist.")

    def add_message(self, conv_id: str, owner: str | None, *, role: str, content: str, reasoning: str | None = None,
                    citations: list[dict[str, Any]] | None = None, model: str | None = None) -> Message:  # fmt: skip
        if role not in ROLES:
            raise UserInputError(f"A message role must be one of {', '.join(ROLES)}, not {role!r}.")
        if len(content) + len(reasoning or "") > MAX_MESSAGE_CHARS:
            raise UserInputError(f"The message is longer than {MAX_MESSAGE_CHARS} characters.")
        self.get(conv_id, owner)
        message = Message(uuid.uuid4().hex, role, content, reasoning, citations, model, time.time())
        with self._connect() as db:
            seq = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?", (conv_id,)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO messages (id, conversation_id, seq, role, content, reasoning, citations, model,"
                " created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (message.id, conv_id, seq, role, content, reasoning,
                 json.dumps(citations, ensure_ascii=False) if citations is not None else None, model,
                 message.created_at),
            )  # fmt: skip
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (message.created_at, conv_id))
        return message

    def truncate(self, conv_id: str, owner: str | None, message_id: str) -> Conversation:
        """Drop `message_id` and every later message (edit-and-resend, regenerate)."""
        self.get(conv_id, owner)
        with self._connect() as db:
            row = db.execute(
                "SELECT seq FROM messages WHERE id = ? AND conversation_id = ?", (message_id, conv_id)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"Message {message_id!r} is not in conversation {conv_id!r}.")
            db.execute("DELETE FROM messages WHERE conversation_id = ? AND seq >= ?", (conv_id, row["seq"]))
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), conv_id))
        return self.get(conv_id, owner)

    def reassign(self, from_owner: str, to_owner: str) -> int:
        """Give every conversation of one owner to another (single-user chats to the first administrator)."""
        with self._connect() as db:
            return int(
                db.execute(
                    "UPDATE conversations SET owner = ? WHERE owner = ?", (to_owner, from_owner)
                ).rowcount
            )


def _message(row: sqlite3.Row) -> Message:
    citations = json.loads(row["citations"]) if row["citations"] else None
    return Message(row["id"], row["role"], row["content"], row["reasoning"], citations, row["model"],
                   row["created_at"])  # fmt: skip


def _conversation(row: sqlite3.Row, count: int, messages: tuple[Message, ...]) -> Conversation:
    return Conversation(
        row["id"], row["title"], row["model"], row["system_prompt"], row["temperature"], row["context_tokens"],
        row["max_tokens"], row["knowledge_base"], row["created_at"], row["updated_at"], count, messages,
    )  # fmt: skip
