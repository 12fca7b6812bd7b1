"""Pull progress: one report type for CLI and API, and the meter that adds speed and ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bendi.store.download import FileProgress


@dataclass(frozen=True)
class PullProgress:
    """One progress report; byte counts are over the whole model (all parts of a split GGUF)."""

    status: str  # "resolving" | "downloading" | "verifying" | "success"
    model: str
    file_name: str | None = None
    source: str | None = None
    completed_bytes: int = 0
    total_bytes: int | None = None
    speed_bytes_per_s: float = 0.0
    eta_s: float | None = None


ProgressFn = Callable[[PullProgress], None]


class Meter:
    """Turns byte counts into speed and ETA (smoothed over a sliding window)."""

    def __init__(self, model: str, total: int | None, progress: ProgressFn | None) -> None:
        self.model, self.total, self.progress = model, total, progress
        self.base = 0  # bytes of files already finished
        self.samples: list[tuple[float, int]] = []
        self.last_emit = 0.0

    def file(self, source: str, update: FileProgress) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        done = self.base + update.done_bytes
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > 3.0:
            self.samples.pop(0)
        if now - self.last_emit < 0.1 and update.done_bytes != update.total_bytes:
            return
        self.last_emit = now
        t0, b0 = self.samples[0]
        speed = (done - b0) / (now - t0) if now > t0 and done >= b0 else 0.0
        eta = (self.total - done) / speed if speed > 0 and self.total else None
        name = update.path_in_repo.rsplit("/", 1)[-1]
        self.progress(PullProgress("downloading", self.model, name, source, done, self.total, speed, eta))
