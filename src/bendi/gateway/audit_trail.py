"""AuditTrail: audit records and usage counts written on one background thread, off the event loop.

An audit append is a durable SQLite commit (fsync); doing that on the event loop per request would
stall every stream. Records are queued and written in order, every record waiting at that moment
in one transaction (one fsync per batch, however busy the server). `flush()` waits for the queue
(tests, reads of the log, shutdown). A full queue blocks the caller briefly rather than dropping.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bendi.audit")
_STOP = object()


class _Record:
    """One audit event for `audit_log.append_many`, batched with its neighbours."""

    __slots__ = ("audit_log", "event", "ts")

    def __init__(self, audit_log: Any, event: Any, ts: float) -> None:
        self.audit_log, self.event, self.ts = audit_log, event, ts


class AuditTrail:
    def __init__(self, max_pending: int = 10_000) -> None:
        self._queue: queue.Queue[object] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _put(self, item: object) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="bendi-audit", daemon=True)
                self._thread.start()
        self._queue.put(item)

    def append(self, audit_log: Any, event: Any, ts: float) -> None:
        """Queue one audit record (written with whatever else is waiting, in order)."""
        self._put(_Record(audit_log, event, ts))

    def submit(self, write: Callable[[], object]) -> None:
        """Run `write` on the trail's thread, after everything submitted before it."""
        self._put(write)

    def flush(self, timeout_s: float = 10.0) -> None:
        done = threading.Event()
        self.submit(done.set)
        done.wait(timeout_s)

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:  # take everything that is waiting: one transaction for a run of records
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch: list[_Record] = []
            for item in items:
                if isinstance(item, _Record) and (not batch or batch[0].audit_log is item.audit_log):
                    batch.append(item)
                    continue
                self._write(batch)
                batch = [item] if isinstance(item, _Record) else []
                if item is _STOP:
                    return
                if not isinstance(item, _Record):
                    self._call(item)
            self._write(batch)

    def _write(self, batch: list[_Record]) -> None:
        if batch:
            self._call(lambda: batch[0].audit_log.append_many([(r.event, r.ts) for r in batch]))

    @staticmethod
    def _call(item: object) -> None:
        try:
            item()  # type: ignore[operator]
        except Exception:  # a failed write must not stop the trail; it is logged (no secrets in it)
            log.exception("audit or usage write failed")

    async def aclose(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout=10.0)
