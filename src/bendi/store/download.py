"""Resumable, verified download of one file into a content-addressed blob.

The partial lives in partials/<key>.part next to a JSON sidecar (URL, ETag, expected size and
hash, bytes done). A later attempt resumes with HTTP Range when the sidecar still describes the
same file, re-hashing the bytes already on disk (cheap next to the network and robust to crashes).
A server that ignores Range, or a file whose ETag/size/hash changed, restarts the download cleanly.
The hash is computed while streaming; the finished file is fsynced and renamed into blobs/
atomically, so a reader never sees half a model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from bendi.core.errors import BendiError, DownloadError, IntegrityError
from bendi.store.body import Body
from bendi.store.hosts import GuardedClient
from bendi.store.manifest import Layout
from bendi.store.parallel import RangesUnsupported, SegmentedFetch, plan_segments, segments_from_json
from bendi.store.partial import (
    DownloadCancelled,
    DownloadState,
    HashingWriter,
    check_disk_space,
    content_range,
    disk_full_or,
    exclusive,
    retryable,
)
from bendi.store.sources import RemoteFile

HASH_READ_BYTES = 8 * 1024 * 1024
SIDECAR_EVERY_BYTES = 16 * 1024 * 1024
PARALLEL_MIN_BYTES = 64 * 1024 * 1024  # below this one connection is as fast
SPLIT_PROBE_S = 2.0  # how long one connection runs before its speed decides on splitting


class _SplitRequested(Exception):
    """One connection proved slow: continue the rest of the file over several."""


@dataclass(frozen=True)
class FileProgress:
    """Bytes of one file so far; the store turns these into PullProgress for CLI and API."""

    path_in_repo: str
    done_bytes: int
    total_bytes: int | None
    resumed_from_bytes: int


class _Job(NamedTuple):
    """One file being fetched: its partial and sidecar, what it must become, who watches."""

    part: Path
    sidecar: Path
    remote: RemoteFile
    want: str | None  # the SHA-256 it must have, when known
    progress: Callable[[FileProgress], None] | None
    cancel: threading.Event | None


class Downloader:
    """Downloads RemoteFiles into the Layout's blobs, resuming and verifying."""

    def __init__(
        self,
        layout: Layout,
        http: GuardedClient,
        *,
        max_attempts_without_progress: int = 5,
        backoff_s: float = 0.5,
        connections: int = 1,
        parallel_min_bytes: int = PARALLEL_MIN_BYTES,
        split_below_bytes_per_s: float = math.inf,
        split_probe_s: float = SPLIT_PROBE_S,
    ) -> None:
        self.layout = layout
        self.http = http
        self.max_attempts = max_attempts_without_progress
        self.backoff_s = backoff_s
        self.connections = connections
        self.parallel_min_bytes = parallel_min_bytes
        self.split_below_bytes_per_s = split_below_bytes_per_s  # inf: split from the start
        self.split_probe_s = split_probe_s

    def fetch(
        self,
        remote: RemoteFile,
        key: str,
        *,
        expected_sha256: str | None = None,
        progress: Callable[[FileProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[str, int, bool]:
        """Download into a blob; returns (digest, size_bytes, verified_against_publisher)."""
        want = expected_sha256 or remote.sha256
        if expected_sha256 and remote.sha256 and expected_sha256 != remote.sha256:
            raise IntegrityError(
                f"{remote.source} publishes sha256 {remote.sha256} for {remote.path_in_repo}, but the catalog "
                f"expects {expected_sha256}. The file changed upstream; refusing to download it."
            )
        if want and self.layout.blob_path(f"sha256-{want}").is_file():
            size = self.layout.blob_path(f"sha256-{want}").stat().st_size
            return f"sha256-{want}", size, True  # already have these bytes (another model, earlier pull)
        part = self.layout.paths.partials / f"{key}.part"
        sidecar = part.with_suffix(".json")
        with exclusive(part.with_suffix(".lock"), remote.path_in_repo):
            self._drop_stale_partials(remote.url, key)
            for attempt in (1, 2):
                resumed = self._prepare(part, sidecar, remote, want)
                try:
                    digest, size = self._download(_Job(part, sidecar, remote, want, progress, cancel))
                except IntegrityError:
                    part.unlink(missing_ok=True)
                    sidecar.unlink(missing_ok=True)
                    # A resumed partial may hold bytes a crash or reboot never flushed: retry once from zero.
                    if resumed and attempt == 1:
                        continue
                    raise
                return digest, size, want is not None
        raise AssertionError("unreachable")

    def _drop_stale_partials(self, url: str, key: str) -> None:
        """A partial of an older version of this URL (other hash, other key) can never be resumed."""
        for sidecar in self.layout.paths.partials.glob("*.json"):
            if sidecar.stem == key:
                continue
            try:
                state = json.loads(sidecar.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(state, dict) and state.get("url") == url:
                sidecar.with_suffix(".part").unlink(missing_ok=True)
                sidecar.unlink(missing_ok=True)

    def _prepare(self, part: Path, sidecar: Path, remote: RemoteFile, want: str | None) -> bool:
        """Keep the partial only if the sidecar describes the same remote file; True if resuming."""
        try:
            state = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = None
        same = (
            isinstance(state, dict)
            and part.is_file()
            and state.get("size_bytes") == remote.size_bytes
            and state.get("sha256") == want
            # with a published hash the content is pinned; without one, the URL and ETag must match
            and (want is not None or (state.get("url") == remote.url and state.get("etag") == remote.etag))
        )
        if not same:
            part.unlink(missing_ok=True)
        size = part.stat().st_size if part.is_file() else 0
        self._write_sidecar(sidecar, remote, want, size, None, drop_segments=not same)
        return same and part.stat().st_size > 0

    def _write_sidecar(
        self,
        sidecar: Path,
        remote: RemoteFile,
        want: str | None,
        done: int,
        response_etag: str | None,
        *,
        segments: list[list[int]] | None = None,
        drop_segments: bool = False,
    ) -> None:
        try:
            old = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if not isinstance(old, dict):
            old = {}
        if segments is None and not drop_segments:
            segments = old.get("segments")  # a parallel download's per-segment progress survives rewrites
        state = {
            "url": remote.url,
            "etag": remote.etag,
            "size_bytes": remote.size_bytes,
            "sha256": want,
            "bytes_done": done,
            "response_etag": response_etag or old.get("response_etag"),
            "segments": segments,
            "updated_s": time.time(),
        }
        tmp = sidecar.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, sidecar)

    def _download(self, job: _Job) -> tuple[str, int]:
        part, sidecar, remote, want = job.part, job.sidecar, job.remote, job.want
        hasher = self._segmented(job)
        if hasher is None:
            hasher = self._sequential(job, may_split=True)
        if hasher is None:  # one connection proved slow: the rest comes over several
            hasher = self._segmented(job, split_now=True)
        if hasher is None:  # the server refused ranges after all
            hasher = self._sequential(job, may_split=False)
        assert hasher is not None
        digest = hasher.hexdigest()
        if want is not None and digest != want:
            raise IntegrityError(
                f"{remote.path_in_repo} is corrupt: want sha256 {want}, got {digest}. The partial download was "
                "discarded; run `bendi pull` again."
            )
        with open(part, "rb+") as handle:
            os.fsync(handle.fileno())
        blob = self.layout.blob_path(f"sha256-{digest}")
        os.replace(part, blob)
        sidecar.unlink(missing_ok=True)
        return f"sha256-{digest}", blob.stat().st_size

    def _segmented(self, job: _Job, *, split_now: bool = False) -> hashlib._Hash | None:
        """Download over several connections when worthwhile; None: use one connection instead."""
        part, sidecar, remote, want, progress, cancel = job
        total = remote.size_bytes
        if total is None or not self._may_split(remote, want):
            return None
        try:
            recorded = json.loads(sidecar.read_text(encoding="utf-8")).get("segments")
        except (OSError, ValueError, AttributeError):
            recorded = None
        segments = segments_from_json(recorded, total) if part.is_file() else None
        if segments is None and split_now:
            segments = plan_segments(total, self.connections, done_prefix=part.stat().st_size)
        if segments is None:
            if (part.is_file() and part.stat().st_size > 0) or not math.isinf(self.split_below_bytes_per_s):
                return None  # a one-connection partial keeps resuming that way; or probe one first
            segments = plan_segments(total, self.connections)
        check_disk_space(part.parent, sum(s.remaining for s in segments), remote.path_in_repo)
        resumed_from = sum(s.done for s in segments)

        def save(state: list[list[int]]) -> None:
            done = sum(item[2] for item in state)
            self._write_sidecar(sidecar, remote, want, done, None, segments=state)

        def report(done: int, total_bytes: int) -> None:
            if progress is not None:
                progress(FileProgress(remote.path_in_repo, done, total_bytes, resumed_from))

        fetch = SegmentedFetch(self.http, remote, part, segments, save, max_attempts=self.max_attempts,
                               backoff_s=self.backoff_s)  # fmt: skip
        try:
            return fetch.run(report, cancel)
        except RangesUnsupported:
            part.unlink(missing_ok=True)
            self._write_sidecar(sidecar, remote, want, 0, None, drop_segments=True)
            return None

    def _may_split(self, remote: RemoteFile, want: str | None) -> bool:
        # segments need a known size, and a published hash to check the stitched file
        return (
            self.connections >= 2
            and want is not None
            and remote.size_bytes is not None
            and remote.size_bytes >= self.parallel_min_bytes
            and self.split_below_bytes_per_s > 0
        )

    def _sequential(self, job: _Job, *, may_split: bool) -> hashlib._Hash | None:
        """One connection; None when its probe found it slow enough to split the rest."""
        part, remote, want, cancel = job.part, job.remote, job.want, job.cancel
        probe = may_split and self._may_split(remote, want)
        total = remote.size_bytes
        done = part.stat().st_size if part.is_file() else 0
        if total is not None and done > total:
            part.unlink()
            done = 0
        check_disk_space(part.parent, (total or 0) - done, remote.path_in_repo)
        state = DownloadState(done, hashlib.sha256(), total, done)
        if done:
            with open(part, "rb") as existing:
                while block := existing.read(HASH_READ_BYTES):
                    state.hasher.update(block)
        failures = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled(
                    f"Download of {remote.path_in_repo} stopped; run `bendi pull` to resume."
                )
            before = state.done
            try:
                if self._attempt(job, state, probe):
                    break
            except _SplitRequested:
                return None
            except DownloadError as exc:
                if isinstance(exc, DownloadError) and not getattr(exc, "retryable", False):
                    raise
                failures = 0 if state.done > before else failures + 1
                if failures >= self.max_attempts:
                    raise DownloadError(
                        f"Downloading {remote.path_in_repo} keeps failing ({exc}); {state.done} bytes are kept. "
                        "Run `bendi pull` again to resume, or try another --source."
                    ) from exc
                if failures:  # a link that dropped after making progress is retried at once
                    time.sleep(min(self.backoff_s * 2 ** (failures - 1), 10.0))
        return state.hasher

    def _attempt(self, job: _Job, state: DownloadState, probe: bool) -> bool:
        """One GET, updating `state` as bytes land; True when the file is complete."""
        part, sidecar, remote, want = job.part, job.sidecar, job.remote, job.want
        if state.total is not None and state.done == state.total:
            return True
        headers = {"Accept-Encoding": "identity"}
        if state.done:
            headers["Range"] = f"bytes={state.done}-"
        response = self.http.open_body(remote.url, headers)
        try:
            status = response.status_code
            if status >= 500 or status == 429:
                raise retryable(f"{remote.source} answered HTTP {status}")
            if status == 206:
                start, length = content_range(response.headers.get("content-range"))
                if start != state.done or (state.total is not None and length not in (None, state.total)):
                    state.restart(part)
                    raise retryable("server answered a different range than asked; restarting")
            elif status == 200:
                if state.done:  # Range ignored: the body is the whole file, start over
                    state.restart(part)
                content_length = response.headers.get("content-length")
                if state.total is None and content_length and content_length.isdigit():
                    state.total = int(content_length)
            else:
                raise DownloadError(f"{remote.source} answered HTTP {status} for {remote.path_in_repo}.")
            response_etag = response.headers.get("etag")
            recorded = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
            if state.done and response_etag and recorded.get("response_etag") not in (None, response_etag):
                state.restart(part)  # the file changed under us (new ETag)
                self._write_sidecar(sidecar, remote, want, 0, response_etag)
                raise retryable("the file changed on the server (ETag); restarting")
            self._write_sidecar(sidecar, remote, want, state.done, response_etag)
            stop = self._receive(job, state, response, response_etag, probe)
            if stop is not None:
                if not isinstance(stop, DownloadCancelled):
                    state.restart(part)
                raise stop
            self._write_sidecar(sidecar, remote, want, state.done, response_etag)
            if state.total is None:
                state.total = state.done
            if state.done < state.total:
                raise retryable(f"the connection closed after {state.done} of {state.total} bytes")
            return True
        finally:
            response.close()

    def _receive(
        self, job: _Job, state: DownloadState, response: Body, response_etag: str | None, probe: bool
    ) -> BendiError | None:
        """Stream the body into the partial; returns why it stopped early (None: the body ended).

        A dropped link raises (retryable) after everything received is on disk and hashed. With
        `probe`, a link slower than split_below_bytes_per_s after split_probe_s raises _SplitRequested.
        """
        part, sidecar, remote, want, progress, cancel = job
        received = state.done  # bytes taken off the socket; state.done trails it (written + hashed)
        next_sidecar = received + SIDECAR_EVERY_BYTES
        probe_start, probe_from = time.monotonic(), received
        with open(part, "ab", buffering=0) as out:
            writer = HashingWriter(out.fileno(), state)
            try:
                while True:
                    buffer = writer.buffer()
                    size = response.readinto(buffer)
                    if size == 0:
                        writer.release(buffer)
                        return None
                    if state.total is not None and received + size > state.total:
                        writer.release(buffer)
                        return retryable("the server sent more bytes than the file has; restarting")
                    writer.commit(buffer, size)
                    received += size
                    if received >= next_sidecar:
                        self._write_sidecar(sidecar, remote, want, state.done, response_etag)
                        next_sidecar = received + SIDECAR_EVERY_BYTES
                    if progress is not None:
                        progress(FileProgress(remote.path_in_repo, received, state.total, state.resumed_from))
                    if cancel is not None and cancel.is_set():
                        return DownloadCancelled(
                            f"Download of {remote.path_in_repo} stopped; run `bendi pull` to resume."
                        )
                    if probe and (elapsed := time.monotonic() - probe_start) >= self.split_probe_s:
                        probe = False
                        left = (state.total or 0) - received
                        if (received - probe_from) / elapsed < self.split_below_bytes_per_s and left > 0:
                            raise _SplitRequested()  # after `finally`: all received is kept
            except OSError as exc:  # our own write failed; transport failures arrive as DownloadError
                write_error = exc
            finally:
                writer.close()  # every byte taken off the socket is on disk and hashed
                self._write_sidecar(sidecar, remote, want, state.done, response_etag)
        raise disk_full_or(write_error, remote.path_in_repo, part) from write_error
