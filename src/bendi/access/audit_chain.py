"""The audit log's hash chain: the one record hash, the head file, and the check of a stored chain.

The hash is defined once, here: SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of
every stored column of a record (`seq`, `ts`, each event field with `documents` and `detail` as their
stored JSON text) plus the previous record's hash and a format version. Changing any of that changes
every hash, so it is versioned (`HASH_VERSION`) rather than edited.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HASH_VERSION = 1
GENESIS_HASH = "0" * 64  # the "previous hash" of record 1
# The stored columns the hash covers, in table order (the hash sorts them, the order is for SQL).
COLUMNS = (
    "seq", "ts", "action", "actor", "user_id", "key_id", "address", "method", "route", "status",
    "model", "kb", "documents", "prompt_tokens", "completion_tokens", "detail",
)  # fmt: skip
PRUNE_ACTION = "audit.prune"
HEAD_BYTES = 160  # the head file's fixed size: every write covers the whole file


def canonical_json(value: Any) -> str:
    """One spelling per value: the form both the hash and the stored `documents`/`detail` use."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(values: Mapping[str, Any], prev_hash: str) -> str:
    """The hash of one record as stored; raises TypeError/ValueError for values no record can hold."""
    payload = {name: values[name] for name in COLUMNS}
    payload["prev_hash"] = prev_hash
    payload["v"] = HASH_VERSION
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def storable_text(value: object) -> str:
    """A str SQLite can store: lone surrogates (from a hostile client) become "?", not an error."""
    text = value if isinstance(value, str) else str(value)
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8", "replace")


def optional_text(value: object | None) -> str | None:
    return None if value is None else storable_text(value)


def json_ready(value: Any) -> Any:
    """String keys (so sorting works), lists for tuples and sets; the rest `canonical_json` str()s."""
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((json_ready(item) for item in value), key=str)
    return value


@dataclass(frozen=True)
class Head:
    """The last record the log wrote, as the sidecar file remembers it (`seq` -1: unreadable file)."""

    seq: int
    hash: str


def read_head(path: Path) -> Head | None:
    """The head file's content; None when there is none. A read that overlaps a write sees a bad
    check value and is retried; a file that stays unreadable gives seq -1."""
    for attempt in range(3):
        if attempt:
            time.sleep(0.0005 * attempt)
        try:
            data = json.loads(path.read_bytes())
            head = Head(int(data["seq"]), str(data["hash"]))
            if data["check"] == _head_check(head):
                return head
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return Head(-1, "")


def write_head(path: Path, head: Head) -> None:
    """Overwrite the head file in place: one write of HEAD_BYTES at offset 0, with a check value.

    Not write-and-rename: on ext4 a rename over a file flushes the new file's data first, which cost
    as much as the audit commit itself on a busy disk; a torn read is caught by the check instead.
    No fsync either: after a power cut the file may hold an older head, which `check_chain` accepts
    (the records after it are still checked by the chain).
    """
    body = canonical_json({"seq": head.seq, "hash": head.hash, "check": _head_check(head)}).encode()
    data = body.ljust(HEAD_BYTES - 1) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        if os.fstat(fd).st_size != len(data):
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _head_check(head: Head) -> str:
    return hashlib.sha256(f"{head.seq}:{head.hash}".encode()).hexdigest()[:16]


def head_agrees(head: Head | None, prev: Head, hash_at: Callable[[int], str | None]) -> bool:
    """Whether the head file still describes the log whose last record is `prev`. When it does not
    (the end was cut off, the file went missing), appends leave it as it is: evidence for verify().
    A head behind the log is fine when it names a record that is still there, unchanged (the head
    is written after the commit, so a reader or a crash can find it one step behind)."""
    if head is None:
        return False  # a new log writes its head (seq 0) before its first record
    if head.seq == prev.seq:
        return head.hash == prev.hash
    return 0 <= head.seq < prev.seq and hash_at(head.seq) == head.hash


@dataclass(frozen=True)
class ChainResult:
    ok: bool
    first_bad_seq: int | None
    reason: str


def check_chain(
    rows: Iterable[Mapping[str, Any]], *, anchor: Head, head: Head | None, head_name: str
) -> ChainResult:
    """Walk the stored records oldest first and say where the chain first breaks, and why.

    `anchor` is the last pruned record (seq 0 and GENESIS_HASH when nothing was pruned); `head` is the
    head file's content, read before the rows were, so every record it names was already committed.
    """
    expected, prev_hash, count = anchor.seq + 1, anchor.hash, 0
    head_hash: str | None = anchor.hash if head is not None and head.seq == anchor.seq else None
    prune_covers_anchor = anchor.seq == 0
    for row in rows:
        seq = int(row["seq"])
        if seq < expected:
            return _bad(seq, f"Record {seq} lies before the retention anchor (record {anchor.seq}).")
        if seq > expected:
            gap = f"Record {expected} is" if seq == expected + 1 else f"Records {expected} to {seq - 1} are"
            return _bad(expected, f"{gap} missing: the log jumps from record {expected - 1} to {seq}.")
        try:
            intact = record_hash(row, str(row["prev_hash"])) == row["hash"]
        except (TypeError, ValueError):
            intact = False
        if not intact:
            return _bad(seq, f"Record {seq} was changed after it was written: it no longer matches its hash.")
        if row["prev_hash"] != prev_hash:
            if seq == anchor.seq + 1:
                return _bad(seq, f"Record {seq} does not follow the retention anchor (record {anchor.seq}).")
            return _bad(seq - 1,
                f"Record {seq - 1} was replaced: record {seq} is chained to a different record {seq - 1} "
                f"(its hash was recomputed after an edit, or record {seq} itself was forged).",
            )  # fmt: skip
        if row["action"] == PRUNE_ACTION and _prune_target(row) == (anchor.seq, anchor.hash):
            prune_covers_anchor = True
        if head is not None and seq == head.seq:
            head_hash = str(row["hash"])
        prev_hash, expected, count = str(row["hash"]), expected + 1, count + 1
    if not prune_covers_anchor:
        return _bad(anchor.seq,
            f"Records up to {anchor.seq} were deleted outside retention: no {PRUNE_ACTION} record "
            "accounts for the retention anchor.",
        )  # fmt: skip
    last = expected - 1
    return _check_head(count, last, anchor, head, head_hash, head_name)


def _check_head(
    count: int, last: int, anchor: Head, head: Head | None, head_hash: str | None, head_name: str
) -> ChainResult:
    if count == 0 and last == 0 and (head is None or head.seq == 0):
        return ChainResult(True, None, "The audit log is empty.")
    if head is None:
        return _bad(None,
            f"The head file {head_name} is missing, so records deleted from the end of the log cannot be "
            f"detected. If the log was moved, move {head_name} with it.",
        )  # fmt: skip
    if head.seq < 0:
        return _bad(None, f"The head file {head_name} is unreadable; the end of the log cannot be checked.")
    if head.seq > last:
        gone = f"record {last + 1} was" if head.seq == last + 1 else f"records {last + 1} to {head.seq} were"
        return _bad(last + 1,
            f"The log ends at record {last}, but {head_name} says record {head.seq} was written: {gone} "
            "deleted (or the database was restored from an older copy).",
        )  # fmt: skip
    if head.seq < anchor.seq or head_hash != head.hash:
        return _bad(head.seq,
            f"Record {head.seq} is not the one {head_name} recorded: the end of the log was deleted and "
            "written again.",
        )  # fmt: skip
    span = f"records {anchor.seq + 1} to {last}" if count != 1 else f"record {last}"
    return ChainResult(True, None, f"All {count} records are intact ({span}; the head file agrees).")


def _prune_target(row: Mapping[str, Any]) -> tuple[int, str] | None:
    try:
        detail = json.loads(row["detail"])
        return int(detail["through_seq"]), str(detail["anchor_hash"])
    except (ValueError, KeyError, TypeError):
        return None


def _bad(seq: int | None, reason: str) -> ChainResult:
    return ChainResult(False, seq, reason)
