"""A partial download on disk: its lock, its progress state, the hashing writer, the free-space check."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import queue
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bendi.core.errors import BendiError, DiskFullError, DownloadError

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def disk_margin_bytes(size_bytes: int) -> int:
    """Free space to leave beyond the file itself: 1% plus 64 MiB, so the system keeps breathing."""
    return size_bytes // 100 + 64 * 1024 * 1024


def check_disk_space(folder: Path, needed_bytes: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    want = needed_bytes + disk_margin_bytes(needed_bytes)
    if free < want:
        raise DiskFullError(
            f"Not enough disk space for {what}: it needs {want / 1e9:.2f} GB (with margin) in {folder}, "
            f"but only {free / 1e9:.2f} GB are free. Free some space (e.g. `bendi rm` an unused model) "
            "or point BENDI_HOME at a bigger disk."
        )


BUFFER_BYTES = 1024 * 1024
BUFFERS = 8


def disk_full_or(exc: OSError, what: str, part: Path) -> OSError | DiskFullError:
    """A failed write of a partial, as the user should hear it: a full disk (or a file-size
    limit) says what is kept and how to resume; any other OSError is returned as it is."""
    if exc.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return exc
    return DiskFullError(
        f"The disk is full (or a file-size limit was hit) while downloading {what}; what arrived is kept "
        f"in {part}. Free some space and run `bendi pull` again to resume."
    )


class HashingWriter:
    """Appends received buffers to the partial and hashes them on a second thread.

    The reader takes a free buffer, fills it from the socket, `commit`s it (written here, on the
    reader's thread, so a full disk is reported at once), and the hashing thread returns it to
    the pool. hashlib releases the GIL, so hashing overlaps the next read instead of adding to it.
    `state.done` counts bytes both written and hashed: exactly what a resume can trust.
    """

    def __init__(self, fd: int, state: DownloadState, *, buffers: int = BUFFERS) -> None:
        self._fd, self._state = fd, state
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(buffers):
            self._free.put(bytearray(BUFFER_BYTES))
        self._written: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._hash, name="bendi-download-hasher", daemon=True)
        self._thread.start()

    def buffer(self) -> bytearray:
        return self._free.get()

    def release(self, buffer: bytearray) -> None:
        self._free.put(buffer)

    def commit(self, buffer: bytearray, size: int) -> None:
        """Write buffer[:size]; an OSError (disk full) propagates after what was written is hashed."""
        view, written = memoryview(buffer)[:size], 0
        try:
            while written < size:
                written += os.write(self._fd, view[written:])
        finally:
            self._written.put((buffer, written))

    def close(self) -> None:
        """Wait until every written byte is hashed."""
        self._written.put(None)
        self._thread.join()

    def _hash(self) -> None:
        while (item := self._written.get()) is not None:
            buffer, size = item
            self._state.hasher.update(memoryview(buffer)[:size])
            self._state.done += size
            self._free.put(buffer)


@dataclass
class DownloadState:
    """Where one file's download stands; mutated in place so a failed attempt loses nothing."""

    done: int
    hasher: hashlib._Hash
    total: int | None
    resumed_from: int

    def restart(self, part: Path) -> None:
        with open(part, "wb"):
            pass
        self.done, self.hasher, self.resumed_from = 0, hashlib.sha256(), 0


class DownloadInProgressError(DownloadError):
    http_status = 409
    code = "download_in_progress"


@contextlib.contextmanager
def exclusive(lock_path: Path, what: str) -> Iterator[None]:
    """One downloader per partial (a CLI pull and a web-UI pull of the same file must not interleave)."""
    with open(lock_path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DownloadInProgressError(
                f"Another bendi process is downloading {what} right now; wait for it to finish or stop it."
            ) from exc
        try:
            yield
        finally:
            # No partial left (done or discarded): drop the lock file while holding it. A process that
            # opened it meanwhile fails its LOCK_NB above; one opening it later makes a fresh one.
            if not lock_path.with_suffix(".part").exists():
                lock_path.unlink(missing_ok=True)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class DownloadCancelled(BendiError):
    """The user stopped the pull (Ctrl-C, client went away); the partial is kept for resuming."""

    http_status = 499
    code = "download_cancelled"


def retryable(message: str) -> DownloadError:
    error = DownloadError(message)
    error.retryable = True  # type: ignore[attr-defined]
    return error


def content_range(raw: str | None) -> tuple[int | None, int | None]:
    match = _CONTENT_RANGE.match(raw or "")
    if not match:
        return None, None
    total = match.group(3)
    return int(match.group(1)), (int(total) if total != "*" else None)
