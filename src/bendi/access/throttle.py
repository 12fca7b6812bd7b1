"""Login throttling: after a few failures per username or per address, a growing wait, then a lock."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from bendi.core.errors import QuotaExceededError

# (free failures, failures that lock): typos are free; an address is shared by everyone behind one
# NAT (a hospital's wards), so it gets more room than one username.
USER_LIMITS = (3, 10)
ADDRESS_LIMITS = (10, 50)
LOCK_S = 15 * 60.0
MAX_DELAY_S = 60.0
FORGET_AFTER_S = 3600.0
MAX_TRACKED = 100_000  # bounded memory under a spray of usernames


@dataclass
class _Record:
    failures: int = 0
    last_failure: float = 0.0


class LoginThrottle:
    """Tracks failures by `user:<name>` and `addr:<ip>`; both are checked before a password is tried."""

    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def check(self, username_key: str, address: str, now: float | None = None) -> None:
        """Raise 429 with Retry-After while either the name or the address must wait."""
        now = now or time.time()
        wait = max(self._wait(f"user:{username_key}", now, USER_LIMITS),
                   self._wait(f"addr:{address}", now, ADDRESS_LIMITS))  # fmt: skip
        if wait > 0:
            raise QuotaExceededError(
                f"Too many failed sign-ins. Wait {int(wait) + 1} seconds and try again"
                " (an administrator can reset the password).", wait,
            )  # fmt: skip

    def failed(self, username_key: str, address: str, now: float | None = None) -> None:
        now = now or time.time()
        with self._lock:
            if len(self._records) > MAX_TRACKED:
                self._sweep(now)
            for key in (f"user:{username_key}", f"addr:{address}"):
                record = self._records.setdefault(key, _Record())
                if now - record.last_failure > FORGET_AFTER_S:
                    record.failures = 0
                record.failures += 1
                record.last_failure = now

    def succeeded(self, username_key: str) -> None:
        with self._lock:
            self._records.pop(f"user:{username_key}", None)

    def _wait(self, key: str, now: float, limits: tuple[int, int]) -> float:
        free, lock_after = limits
        with self._lock:
            record = self._records.get(key)
            if record is None or record.failures <= free:
                return 0.0
            if record.failures >= lock_after:
                delay = LOCK_S
            else:
                delay = min(MAX_DELAY_S, 2.0 ** (record.failures - free))
            return max(0.0, record.last_failure + delay - now)

    def _sweep(self, now: float) -> None:
        for key in [k for k, r in self._records.items() if now - r.last_failure > FORGET_AFTER_S]:
            del self._records[key]
