"""Parallel Range downloads of one large file: N connections writing their segments in place.

Hub CDNs and long-distance links cap each connection, so large files come down over several
(settings.download_connections). Each segment is fetched with its own Range request and written at
its offset (pwrite) into one preallocated partial; the sidecar records every segment's progress, so
an interrupted download resumes each segment where it stopped. The SHA-256 follows the contiguous
frontier (bytes from 0 with no hole) while the download runs, so little is left to hash at the end.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bendi.core.errors import BendiError, DownloadError
from bendi.store.hosts import GuardedClient
from bendi.store.partial import BUFFER_BYTES, DownloadCancelled, content_range, disk_full_or, retryable
from bendi.store.sources import RemoteFile

HASH_STEP_BYTES = 8 * 1024 * 1024
SAVE_EVERY_S = 0.5


class RangesUnsupported(Exception):
    """The server answered a Range request with the whole file: fall back to one connection."""


@dataclass
class Segment:
    start: int
    end: int  # exclusive
    done: int = 0

    @property
    def position(self) -> int:
        return self.start + self.done

    @property
    def remaining(self) -> int:
        return self.end - self.position


def plan_segments(total_bytes: int, connections: int, *, done_prefix: int = 0) -> list[Segment]:
    """Split [done_prefix, total) into `connections` segments; a finished prefix is one more segment."""
    size = -(-(total_bytes - done_prefix) // connections)
    prefix = [Segment(0, done_prefix, done_prefix)] if done_prefix else []
    return prefix + [Segment(i, min(total_bytes, i + size)) for i in range(done_prefix, total_bytes, size)]


def segments_from_json(raw: object, total_bytes: int) -> list[Segment] | None:
    """Segments recorded in a sidecar, if they tile [0, total) consistently; else None."""
    if not isinstance(raw, list) or not raw:
        return None
    segments, position = [], 0
    for item in raw:
        if not (isinstance(item, list) and len(item) == 3 and all(isinstance(v, int) for v in item)):
            return None
        start, end, done = item
        if start != position or not start < end <= total_bytes or not 0 <= done <= end - start:
            return None
        segments.append(Segment(start, end, done))
        position = end
    return segments if position == total_bytes else None


class SegmentedFetch:
    def __init__(
        self,
        http: GuardedClient,
        remote: RemoteFile,
        part: Path,
        segments: list[Segment],
        save: Callable[[list[list[int]]], None],
        *,
        max_attempts: int,
        backoff_s: float,
    ) -> None:
        assert remote.size_bytes is not None
        self.http, self.remote, self.part, self.segments, self.save = http, remote, part, segments, save
        self.total = remote.size_bytes
        self.max_attempts, self.backoff_s = max_attempts, backoff_s
        self._stop = threading.Event()
        self._errors: list[BaseException] = []

    def state(self) -> list[list[int]]:
        return [[s.start, s.end, s.done] for s in self.segments]

    def run(
        self, progress: Callable[[int, int], None] | None, cancel: threading.Event | None
    ) -> hashlib._Hash:
        """Download every unfinished segment; returns the SHA-256 of the whole file."""
        fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size != self.total:
                try:
                    os.ftruncate(fd, self.total)  # sparse: the disk fills as segments land
                except OSError as exc:  # EFBIG: a file-size limit below the model's size
                    raise disk_full_or(exc, self.remote.path_in_repo, self.part) from exc
            workers = [
                threading.Thread(target=self._worker, args=(fd, s), name=f"bendi-segment-{i}", daemon=True)
                for i, s in enumerate(self.segments)
                if s.remaining > 0
            ]
            for worker in workers:
                worker.start()
            hasher, hashed = hashlib.sha256(), 0
            last_save = time.monotonic()
            while any(w.is_alive() for w in workers):
                time.sleep(0.05)
                hashed = self._hash_frontier(fd, hasher, hashed)
                if progress is not None:
                    progress(sum(s.done for s in self.segments), self.total)
                if cancel is not None and cancel.is_set():
                    self._stop.set()
                if time.monotonic() - last_save >= SAVE_EVERY_S:
                    self.save(self.state())
                    last_save = time.monotonic()
            self.save(self.state())
            if self._errors:
                raise self._errors[0]
            if any(s.remaining for s in self.segments):
                raise DownloadCancelled(
                    f"Download of {self.remote.path_in_repo} stopped; run `bendi pull` to resume."
                )
            self._hash_frontier(fd, hasher, hashed)
            return hasher
        finally:
            self._stop.set()
            os.close(fd)

    def _frontier(self) -> int:
        for segment in self.segments:
            if segment.remaining:
                return segment.position
        return self.total

    def _hash_frontier(self, fd: int, hasher: hashlib._Hash, hashed: int) -> int:
        frontier = self._frontier()
        while hashed < frontier:
            block = os.pread(fd, min(HASH_STEP_BYTES, frontier - hashed), hashed)
            hasher.update(block)
            hashed += len(block)
        return hashed

    def _worker(self, fd: int, segment: Segment) -> None:
        failures = 0
        while segment.remaining > 0 and not self._stop.is_set():
            before = segment.done
            try:
                self._fetch_range(fd, segment)
            except DownloadError as exc:
                if isinstance(exc, DownloadError) and not getattr(exc, "retryable", False):
                    self._fail(exc)
                    return
                failures = 0 if segment.done > before else failures + 1
                if failures >= self.max_attempts:
                    self._fail(DownloadError(
                        f"Downloading {self.remote.path_in_repo} keeps failing ({exc}); the parts done are "
                        "kept. Run `bendi pull` again to resume, or try another --source."
                    ))  # fmt: skip
                    return
                if failures:
                    time.sleep(min(self.backoff_s * 2 ** (failures - 1), 10.0))
            except (RangesUnsupported, BendiError, OSError) as exc:
                self._fail(exc)
                return

    def _fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self._stop.set()

    def _fetch_range(self, fd: int, segment: Segment) -> None:
        headers = {"Range": f"bytes={segment.position}-{segment.end - 1}", "Accept-Encoding": "identity"}
        response = self.http.open_body(self.remote.url, headers)
        try:
            status = response.status_code
            if status == 200:
                raise RangesUnsupported()
            if status >= 500 or status == 429:
                raise retryable(f"{self.remote.source} answered HTTP {status}")
            if status != 206:
                raise DownloadError(
                    f"{self.remote.source} answered HTTP {status} for {self.remote.path_in_repo}."
                )
            start, total = content_range(response.headers.get("content-range"))
            if start != segment.position or total not in (None, self.total):
                raise RangesUnsupported()
            buffer = memoryview(bytearray(BUFFER_BYTES))
            while not self._stop.is_set():
                size = response.readinto(buffer[: segment.remaining])  # never into the next segment
                if size == 0:
                    raise retryable(f"the connection closed with {segment.remaining} bytes of a segment left")
                view = buffer[:size]
                while view:
                    try:
                        written = os.pwrite(fd, view, segment.position)
                    except OSError as exc:
                        raise disk_full_or(exc, self.remote.path_in_repo, self.part) from exc
                    segment.done += written
                    view = view[written:]
                if segment.remaining == 0:
                    return
        finally:
            response.close()
