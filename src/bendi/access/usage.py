"""Usage and quotas: a ledger of requests and tokens per UTC day, user, key and model, and the gate
that refuses a request (429) when a user or key is over its requests/minute or tokens/day.

The ledger is its own SQLite file (WAL) with one row per (day, user, key, model), upserted on every
request, so it grows with the number of distinct combinations per day, not with traffic.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bendi.core.errors import BendiError, QuotaExceededError, UserInputError

GROUPS = ("day", "user", "key", "model")
_GROUP_COLUMNS = {"day": ("day",), "user": ("user_id", "username"), "key": ("key_id",), "model": ("model",)}

# user_id and key_id are '' (not NULL) when absent: NULLs never conflict in a primary key, so the
# upsert would add a row per request. The API turns '' back into None.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
  day TEXT NOT NULL,
  user_id TEXT NOT NULL,
  username TEXT NOT NULL,
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  requests INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  PRIMARY KEY (day, user_id, username, key_id, model)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_by_key ON usage(day, key_id);
"""
_UPSERT = """
INSERT INTO usage (day, user_id, username, key_id, model, requests, prompt_tokens, completion_tokens)
VALUES (?, ?, ?, ?, ?, 1, ?, ?)
ON CONFLICT (day, user_id, username, key_id, model) DO UPDATE SET
  requests = requests + 1,
  prompt_tokens = prompt_tokens + excluded.prompt_tokens,
  completion_tokens = completion_tokens + excluded.completion_tokens
"""


@dataclass(frozen=True)
class UsageRow:
    """Totals for one group; the fields not grouped on are None."""

    day: str | None
    user_id: str | None
    username: str | None
    key_id: str | None
    model: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total_tokens": self.total_tokens}


def utc_day(ts: float) -> str:
    """The UTC date of a timestamp, as the ledger's `day` column spells it (YYYY-MM-DD)."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def seconds_to_utc_midnight(ts: float) -> float:
    """Seconds from `ts` until the next UTC day starts (POSIX days are exactly 86400 s)."""
    return (ts // 86400 + 1) * 86400 - ts


class UsageLedger:
    """One SQLite file behind a lock (the gateway records from many threads)."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._generation = 0
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self._path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # A power cut may lose the last moments of counting; that is not worth an fsync per request.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def generation(self) -> int:
        """Goes up with every `record()` in this process (lets caches of totals know they are stale)."""
        return self._generation

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> UsageLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(
        self, *, user_id: str | None, username: str, key_id: str | None, model: str,
        prompt_tokens: int, completion_tokens: int, ts: float | None = None,
    ) -> None:  # fmt: skip
        """Count one request and its tokens on the UTC day of `ts` (now by default)."""
        day = utc_day(time.time() if ts is None else ts)
        args = (day, user_id or "", username, key_id or "", model,
                max(0, int(prompt_tokens)), max(0, int(completion_tokens)))  # fmt: skip
        with self._connect() as db:
            db.execute(_UPSERT, args)
            self._generation += 1

    def tokens_today(
        self, *, user_id: str | None = None, key_id: str | None = None, now: float | None = None
    ) -> int:
        """Prompt plus completion tokens used today (UTC) by a user, a key (both given: that user with
        that key); neither given: by everyone."""
        where, args = ["day = ?"], [utc_day(time.time() if now is None else now)]
        if user_id is not None:
            where.append("user_id = ?")
            args.append(user_id)
        if key_id is not None:
            where.append("key_id = ?")
            args.append(key_id)
        sql = "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage WHERE "
        with self._connect() as db:
            return int(db.execute(sql + " AND ".join(where), args).fetchone()[0])

    def summary(self, *, since: float, group_by: Sequence[str] = GROUPS) -> list[UsageRow]:
        """Totals from the UTC day of `since` on, one row per group: newest day first, then the
        heaviest users of tokens first (ties by name, key and model, so the order is stable)."""
        if isinstance(group_by, str):
            group_by = [part.strip() for part in group_by.split(",") if part.strip()]
        unknown = [name for name in group_by if name not in GROUPS]
        if unknown:
            raise UserInputError(
                f"Usage cannot be grouped by {', '.join(map(repr, unknown))}; use any of {', '.join(GROUPS)}."
            )
        columns = [column for name in GROUPS if name in group_by for column in _GROUP_COLUMNS[name]]
        select = ", ".join([*columns, "SUM(requests)", "SUM(prompt_tokens)", "SUM(completion_tokens)"])
        order = (["day DESC"] if "day" in columns else []) + ["SUM(prompt_tokens + completion_tokens) DESC"]
        order += [column for column in ("username", "user_id", "key_id", "model") if column in columns]
        sql = f"SELECT {select} FROM usage WHERE day >= ?"
        if columns:
            sql += f" GROUP BY {', '.join(columns)}"
        sql += f" ORDER BY {', '.join(order)}"
        with self._connect() as db:
            rows = db.execute(sql, (utc_day(since),)).fetchall()
        return [_row(dict(zip(columns, row[: len(columns)], strict=True)), row[len(columns) :]) for row in rows
                if row[len(columns)] is not None]  # fmt: skip

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise BendiError("The usage ledger is closed.")
            yield self._db


def _row(groups: dict[str, Any], totals: Sequence[Any]) -> UsageRow:
    def nullable(name: str) -> Any:
        value = groups.get(name)
        return None if value == "" else value

    return UsageRow(
        groups.get("day"), nullable("user_id"), groups.get("username"), nullable("key_id"), groups.get("model"),
        int(totals[0]), int(totals[1]), int(totals[2]),
    )  # fmt: skip


@dataclass(frozen=True)
class QuotaLimits:
    """Limits for one user or key; None or 0 means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_day: int | None = None

    @property
    def unlimited(self) -> bool:
        return not (self.requests_per_minute or 0) > 0 and not (self.tokens_per_day or 0) > 0


class QuotaGate:
    """Requests per minute: a sliding window in memory, per user and per key (both must have room).
    Tokens per day: today's ledger total per user and per key, cached for at most CACHE_S and
    dropped whenever this process records usage. A request is admitted while the budget is not yet
    used up; its own tokens are only known once it has run, so a day can end a little over."""

    WINDOW_S = 60.0
    CACHE_S = 1.0
    _SWEEP_AT = 10_000  # windows kept before idle ones are dropped

    def __init__(self, ledger: UsageLedger, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ledger = ledger
        self._clock = clock  # monotonic, for the window; the UTC day comes from time.time()
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._totals: dict[tuple[str, str], tuple[float, int, str, int]] = {}  # at, generation, day, tokens

    def admit(self, principal_user_id: str | None, key_id: str | None, limits: QuotaLimits) -> None:
        """Count one request, or raise QuotaExceededError (429) saying which limit and when to retry."""
        subjects = [(kind, ident) for kind, ident in (("user", principal_user_id), ("key", key_id)) if ident]
        if not subjects or limits.unlimited:
            return
        budget = limits.tokens_per_day or 0
        if budget > 0:
            now = time.time()
            for subject in subjects:
                used = self._tokens_today(subject, now)
                if used >= budget:
                    wait = max(1.0, math.ceil(seconds_to_utc_midnight(now)))
                    raise QuotaExceededError(
                        f"The daily token budget is used up: {_whose(subject)} has used {used:,} of "
                        f"{budget:,} tokens today (UTC). It resets at midnight UTC, in {_duration(wait)}; "
                        "retry then, or ask an administrator to raise tokens_per_day.",
                        wait,
                    )
        rate = limits.requests_per_minute or 0
        if rate > 0:
            self._take_slot(subjects, rate)

    def _take_slot(self, subjects: list[tuple[str, str]], rate: int) -> None:
        with self._lock:
            now = self._clock()
            if len(self._windows) > self._SWEEP_AT:
                self._windows = {s: w for s, w in self._windows.items() if w and w[-1] > now - self.WINDOW_S}
            windows = [self._windows.setdefault(subject, deque()) for subject in subjects]
            for subject, window in zip(subjects, windows, strict=True):
                while window and window[0] <= now - self.WINDOW_S:
                    window.popleft()
                if len(window) >= rate:
                    wait = float(max(1, math.ceil(window[0] + self.WINDOW_S - now)))
                    raise QuotaExceededError(
                        f"Too many requests: {_whose(subject)} may send {rate} per minute. "
                        f"Retry in {_duration(wait)}.",
                        wait,
                    )
            for window in windows:
                window.append(now)

    def _tokens_today(self, subject: tuple[str, str], now: float) -> int:
        day, generation, at = utc_day(now), self._ledger.generation, self._clock()
        with self._lock:
            cached = self._totals.get(subject)
        if cached and cached[1] == generation and cached[2] == day and at - cached[0] < self.CACHE_S:
            return cached[3]
        kind, ident = subject
        if kind == "user":
            used = self._ledger.tokens_today(user_id=ident, now=now)
        else:
            used = self._ledger.tokens_today(key_id=ident, now=now)
        with self._lock:
            if len(self._totals) > self._SWEEP_AT:
                self._totals.clear()
            self._totals[subject] = (at, generation, day, used)
        return used


def _whose(subject: tuple[str, str]) -> str:
    return "your account" if subject[0] == "user" else "this API key"


def _duration(seconds: float) -> str:
    whole = int(math.ceil(seconds))
    if whole < 120:
        return f"{whole} second{'s' if whole != 1 else ''}"
    hours, minutes = divmod(math.ceil(whole / 60), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
