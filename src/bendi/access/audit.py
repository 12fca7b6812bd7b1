"""AuditLog: an append-only, hash-chained record of who did what, in its own SQLite file (WAL).

Every record stores the SHA-256 of the record before it (`audit_chain.record_hash`), so `verify()`
finds, and names the first bad seq of: an edited record (any column, including its hash), a record
deleted from the middle (a seq gap), records swapped or reordered (the seq is hashed), a record
rewritten with a recomputed hash (the next record still chains to the old one), a retention anchor
moved without an `audit.prune` record, and the end of the log cut off.

The end of the log: a chain cannot show that its last records were deleted, so every commit also
writes the newest (seq, hash) to the sidecar file `audit.head` beside the database (after the
commit, under the writer's lock). `DELETE FROM audit WHERE seq > N` leaves that file ahead of the
log, and an append that finds the head disagreeing with the log stops advancing it, so re-appending
over the deleted seqs does not hide the cut either. Keeping the head in the database (another table
updated in the same transaction) would not help: whoever deletes the rows edits that table too.

Appends are group-committed: concurrent callers share one transaction and one fsync.

What it cannot detect (there is no secret key: the chain proves integrity, not authorship): someone
who can write both the database and `audit.head` can rebuild the end, or all, of the log with valid
hashes; records forged onto the end with valid hashes pass while the head file is behind them (it
is written after the commit, so a crash can leave it one record behind, and it is not fsynced, so a
power cut can leave it further behind; both are accepted, never reported); deleting the log with its
head file leaves an empty, valid log. Keep exports (`export()`) elsewhere to guard against those.
The retention anchor is trusted as far as an `audit.prune` record in the chain vouches for it.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TextIO

from bendi.access.audit_chain import (
    COLUMNS,
    GENESIS_HASH,
    PRUNE_ACTION,
    Head,
    check_chain,
    head_agrees,
    read_head,
    record_hash,
    write_head,
)
from bendi.access.audit_export import write_export
from bendi.access.audit_records import AuditEvent, AuditRecord, AuditVerdict, record_from_row, stored_values
from bendi.core.errors import BendiError, UserInputError

__all__ = ["AuditEvent", "AuditLog", "AuditRecord", "AuditVerdict"]

MAX_QUERY_LIMIT = 1000

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY,
  ts REAL NOT NULL,
  action TEXT NOT NULL,
  actor TEXT NOT NULL,
  user_id TEXT,
  key_id TEXT,
  address TEXT NOT NULL,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  status INTEGER NOT NULL,
  model TEXT,
  kb TEXT,
  documents TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  detail TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_ts ON audit(ts);
CREATE INDEX IF NOT EXISTS audit_by_actor ON audit(actor, seq);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit(action, seq);
CREATE TABLE IF NOT EXISTS audit_anchor (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL,
  pruned_at REAL
);
INSERT OR IGNORE INTO audit_anchor (id, seq, hash, pruned_at) VALUES (1, 0, '{GENESIS_HASH}', NULL);
"""
_INSERT = f"INSERT INTO audit ({', '.join(COLUMNS)}, prev_hash, hash) VALUES ({', '.join('?' * (len(COLUMNS) + 2))})"


class AuditLog:
    """One SQLite file; appends share one connection under a lock, reads open their own (WAL)."""

    def __init__(self, path: Path, retention_days: int | None = None) -> None:
        self._path = Path(path)
        self._head_path = self._path.with_suffix(".head")
        self._retention_days = retention_days
        self._lock = threading.Lock()  # the write connection and the head file
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self._path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an audit record, once returned, survives a power cut
        self._db.executescript(_SCHEMA)
        with self._lock, self._transaction() as db:  # a new log gets its head before its first record,
            empty = db.execute("SELECT 1 FROM audit LIMIT 1").fetchone() is None  # so "no head" is news
            if empty and _anchor(db).seq == 0 and read_head(self._head_path) is None:
                write_head(self._head_path, Head(0, GENESIS_HASH))

    @property
    def path(self) -> Path:
        return self._path

    @property
    def head_path(self) -> Path:
        return self._head_path

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, event: AuditEvent, *, ts: float | None = None) -> int:
        """Write one record and return its seq; durable (synchronous=FULL) when this returns."""
        return self.append_many([(event, ts)])[0]

    def append_many(self, entries: Iterable[tuple[AuditEvent, float | None]]) -> list[int]:
        """Write several (event, ts) records in one transaction (one fsync); their seqs, in order."""
        batch = [_Pending(stored_values(event), _timestamp(ts)) for event, ts in entries]
        if not batch:
            return []
        with self._queue_lock:
            self._queue.extend(batch)
        with self._lock:  # group commit: whoever gets the lock writes all queued records, one fsync
            if not batch[-1].done:
                with self._queue_lock:
                    queued, self._queue = self._queue, []
                self._commit(queued)
        for pending in batch:
            if pending.error is not None:
                raise pending.error
        return [int(pending.values["seq"]) for pending in batch]

    def prune(self, now: float | None = None) -> int:
        """Delete the records older than the retention; returns how many. The chain stays verifiable:
        the last deleted record becomes the anchor, and an `audit.prune` record says what went."""
        if not self._retention_days or self._retention_days <= 0:
            return 0
        when = time.time() if now is None else float(now)
        cutoff = when - self._retention_days * 86400.0
        with self._lock:
            deleted, head = self._prune_locked(when, cutoff)
            if head is not None:
                write_head(self._head_path, head)
        return deleted

    def _prune_locked(self, when: float, cutoff: float) -> tuple[int, Head | None]:
        with self._transaction() as db:
            anchor = _anchor(db)
            keep = db.execute("SELECT MIN(seq) FROM audit WHERE ts >= ?", (cutoff,)).fetchone()[0]
            if keep is None:  # every record is old: all go, the prune record starts the log again
                keep = (db.execute("SELECT MAX(seq) FROM audit").fetchone()[0] or anchor.seq) + 1
            through = int(keep) - 1
            if through <= anchor.seq:
                return 0, None
            last = db.execute("SELECT hash FROM audit WHERE seq = ?", (through,)).fetchone()
            if last is None:  # pruning over a gap would hide tampering: refuse, loudly
                raise BendiError(
                    f"The audit log is damaged at record {through}, so nothing was pruned. "
                    "Verify the log and export it before deciding what to do."
                )
            deleted = int(db.execute("DELETE FROM audit WHERE seq <= ?", (through,)).rowcount)
            db.execute(
                "INSERT OR REPLACE INTO audit_anchor (id, seq, hash, pruned_at) VALUES (1, ?, ?, ?)",
                (through, last[0], when),
            )
            detail = {"through_seq": through, "anchor_hash": last[0], "deleted": deleted,
                      "retention_days": self._retention_days, "cutoff": cutoff}  # fmt: skip
            event = AuditEvent(PRUNE_ACTION, actor="bendi", detail=detail)
            return deleted, self._insert(db, [_Pending(stored_values(event), when)])

    def verify(self) -> AuditVerdict:
        """Check the whole chain and the head file; the first bad seq and a sentence when it fails."""
        head = read_head(self._head_path)  # before the rows: every record it names is committed by now
        with self._reader() as db:
            db.execute("BEGIN")  # one snapshot for the anchor, the count and the rows
            anchor = _anchor(db)
            total = int(db.execute("SELECT COUNT(*) FROM audit").fetchone()[0])
            rows = (dict(row) for row in db.execute("SELECT * FROM audit ORDER BY seq"))
            result = check_chain(rows, anchor=anchor, head=head, head_name=self._head_path.name)
            db.execute("COMMIT")
        return AuditVerdict(result.ok, total, result.first_bad_seq, result.reason)

    def query(
        self, *, since: float | None = None, until: float | None = None, actor: str | None = None,
        action: str | None = None, limit: int = 200, before_seq: int | None = None,
    ) -> list[AuditRecord]:  # fmt: skip
        """Newest first. `since` is inclusive, `until` exclusive; `action` "auth.*" matches a prefix;
        pass the last seq of a page as `before_seq` for the next one."""
        where, args = _filters(since=since, until=until)
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        if action is not None and action.endswith("*"):
            where.append("substr(action, 1, ?) = ?")
            args += [len(action) - 1, action[:-1]]
        elif action is not None:
            where.append("action = ?")
            args.append(action)
        if before_seq is not None:
            where.append("seq < ?")
            args.append(int(before_seq))
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        args.append(max(1, min(int(limit), MAX_QUERY_LIMIT)))
        with self._reader() as db:
            rows = db.execute(sql + " ORDER BY seq DESC LIMIT ?", args).fetchall()
        return [record_from_row(row) for row in rows]

    def export(
        self, out: TextIO, *, since: float | None = None, fmt: Literal["jsonl", "csv"] = "jsonl"
    ) -> int:
        """Write the records (oldest first) as JSON lines or CSV; returns how many were written.

        CSV: a header row, documents joined by ';', detail as JSON, formula-like cells neutralized
        (`audit_export.escape_csv_cell`)."""
        if fmt not in ("jsonl", "csv"):
            raise UserInputError(f"The export format must be 'jsonl' or 'csv', not {fmt!r}.")
        where, args = _filters(since=since, until=None)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq"
        with self._reader() as db:
            return write_export(out, (record_from_row(row).to_json() for row in db.execute(sql, args)), fmt)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The shared write connection in one IMMEDIATE transaction (the caller holds the lock)."""
        db = self._db
        if db is None:
            raise BendiError("The audit log is closed.")
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if db.in_transaction:
            db.execute("COMMIT")

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self._path, timeout=10.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA query_only=ON")
        try:
            yield db
        finally:
            db.close()

    def _commit(self, batch: list[_Pending]) -> None:
        """Write a batch in one transaction and mark each record done (the caller holds the lock)."""
        try:
            with self._transaction() as db:
                head = self._insert(db, batch)
            if head is not None:
                write_head(self._head_path, head)
        except Exception as exc:  # every waiting caller learns that its record was not written
            for item in batch:
                item.error = exc
        for item in batch:
            item.done = True

    def _insert(self, db: sqlite3.Connection, batch: list[_Pending]) -> Head | None:
        """Chain and insert records; the new head when the head file may advance to it, else None."""
        last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        prev = Head(int(last[0]), str(last[1])) if last else _anchor(db)
        advance = head_agrees(read_head(self._head_path), prev, lambda seq: _hash_at(db, seq))
        for item in batch:
            item.values["seq"], item.values["ts"] = prev.seq + 1, item.ts
            digest = record_hash(item.values, prev.hash)
            db.execute(_INSERT, (*(item.values[name] for name in COLUMNS), prev.hash, digest))
            prev = Head(prev.seq + 1, digest)
        return prev if advance else None


class _Pending:
    """One record waiting for the group commit (mutable: the committer fills in the outcome)."""

    def __init__(self, values: dict[str, Any], ts: float) -> None:
        self.values, self.ts = values, ts
        self.done = False
        self.error: Exception | None = None


def _timestamp(ts: float | None) -> float:
    when = time.time() if ts is None else float(ts)
    if not math.isfinite(when):
        raise UserInputError("An audit timestamp must be a finite number of seconds since 1970.")
    return when


def _anchor(db: sqlite3.Connection) -> Head:
    row = db.execute("SELECT seq, hash FROM audit_anchor WHERE id = 1").fetchone()
    return Head(int(row[0]), str(row[1])) if row else Head(0, GENESIS_HASH)


def _hash_at(db: sqlite3.Connection, seq: int) -> str | None:
    row = db.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
    if row is not None:
        return str(row[0])
    anchor = _anchor(db)
    return anchor.hash if anchor.seq == seq else None


def _filters(*, since: float | None, until: float | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append("ts >= ?")
        args.append(float(since))
    if until is not None:
        where.append("ts < ?")
        args.append(float(until))
    return where, args
