"""Every document is parsed in a worker process (checklist R18): a hostile PDF or DOCX can time out,
crash or exhaust memory, and only that document fails, with the reason; the server goes on.

A small pool of fresh interpreters (parse_worker_child.py: its own network namespace, RLIMIT_AS,
RLIMIT_CPU, a private temp dir), each replaced after `recycle_after` documents or any failure.
The server sends a path and gets JSON back; a worker that stays silent past the timeout is killed
with its process group. OCR runs inside the worker; a lock file keeps it to one page at a time
across all workers, as ocr_pool does within one process."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bendi.core.errors import DocumentError, ParseFailedError
from bendi.knowledge.parse_worker_protocol import (
    MAX_MESSAGE_BYTES,
    BadMessageError,
    Limits,
    decode_document,
    dumps,
    loads,
)
from bendi.knowledge.records import ParsedDocument

if TYPE_CHECKING:
    from bendi.knowledge.ocr_pool import OcrReader

log = logging.getLogger("bendi.knowledge")

PRODUCT_PARSER = "bendi.knowledge.parsers:parse_document"
START_TIMEOUT_S = 120.0  # a fresh interpreter importing pypdf on a loaded 2-core box can take a while
_SIGNALS = {signal.SIGSEGV: "crashed", signal.SIGBUS: "crashed", signal.SIGILL: "crashed",
            signal.SIGFPE: "crashed", signal.SIGABRT: "crashed", signal.SIGXCPU: "cpu_limit",
            signal.SIGXFSZ: "file_size_limit"}  # fmt: skip


class _Worker:
    """One worker process and its two pipes; used by one thread at a time (the pool sees to it)."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.limits = limits
        self.documents = 0
        self.home = Path(tempfile.mkdtemp(prefix="worker-", dir=root))  # private: 0700, removed after
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = {
            # Only what a parser needs: never the server's secrets (LDAP password, keys) in its environment.
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.home),
            "TMPDIR": str(self.home),
            "PYTHONPATH": os.pathsep.join(os.path.abspath(p) for p in sys.path if p),
            "PYTHONDONTWRITEBYTECODE": "1",
            # One BLAS/OpenMP thread: each reserves address space that RLIMIT_AS counts.
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "ORT_DISABLE_TELEMETRY": "1",
        }
        self._stderr = open(self.home / "stderr.log", "wb")  # noqa: SIM115  (closed in close())
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bendi.knowledge.parse_worker_child",
                 str(to_child_r), str(from_child_w), str(limits.memory_mb)],
                pass_fds=(to_child_r, from_child_w), env=env, cwd=self.home, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._out = Connection(to_child_w, readable=False)
        self._in = Connection(from_child_r, writable=False)
        try:
            hello = self._receive(START_TIMEOUT_S)
        except ParseFailedError as exc:
            self.close()
            raise ParseFailedError(f"The parser process could not start: {exc.message}", exc.reason) from None
        self.network = str(hello.get("network", ""))

    def request(self, message: dict[str, Any], on_progress: Any = None) -> Any:
        """The worker's answer ("ok" value), or ParseFailedError/DocumentError naming what went wrong."""
        self.documents += 1
        try:
            self._out.send_bytes(dumps(message))
        except OSError:
            raise self._died() from None
        while True:
            reply = self._receive(self.limits.timeout_s)
            if "progress" in reply:
                if on_progress is not None:
                    done, total = reply["progress"]
                    on_progress(int(done), int(total))
                continue  # a page read: the worker is alive and making progress, the clock restarts
            if "error" in reply:
                error = reply["error"] if isinstance(reply["error"], dict) else {}
                if error.get("reason") == "memory_limit":
                    raise ParseFailedError(self._memory_message(), "memory_limit")
                raise DocumentError(str(error.get("message") or "The parser failed."))
            if "ok" in reply:
                return reply["ok"]
            raise ParseFailedError("The parser process answered something unexpected.", "bad_output")

    def _receive(self, timeout_s: float) -> dict[str, Any]:
        if not self._in.poll(timeout_s):
            self.kill()
            raise ParseFailedError(
                f"Parsing took longer than {timeout_s:g} s without progress and was stopped "
                "(setting kb_parse_timeout_s).",
                "timeout",
            )
        try:
            return loads(self._in.recv_bytes(MAX_MESSAGE_BYTES))
        except (EOFError, ConnectionError):
            raise self._died() from None
        except (OSError, BadMessageError) as exc:  # too long, or not our JSON
            self.kill()
            raise ParseFailedError(
                f"The parser process sent a malformed answer ({exc}).", "bad_output"
            ) from exc

    def _died(self) -> ParseFailedError:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        reason = _SIGNALS.get(-code, "crashed") if code is not None and code < 0 else "crashed"
        tail = self._stderr_tail()
        if reason == "crashed" and (
            "MemoryError" in tail or "bad_alloc" in tail or "Cannot allocate" in tail
        ):
            return ParseFailedError(self._memory_message(), "memory_limit")
        what = {
            "cpu_limit": f"used more than {self.limits.timeout_s:g} CPU seconds without progress "
            "(setting kb_parse_timeout_s)",
            "file_size_limit": f"wrote a file larger than {self.limits.memory_mb} MB",
        }.get(reason, f"crashed ({_describe(code)})")
        return ParseFailedError(f"The parser process {what}; this file cannot be read safely.", reason)

    def _memory_message(self) -> str:
        return (f"Parsing needed more than {self.limits.memory_mb} MB of memory and was stopped "
                "(setting kb_parse_memory_mb); the file may be a decompression bomb.")  # fmt: skip

    def _stderr_tail(self) -> str:
        try:
            with open(self.home / "stderr.log", "rb") as handle:
                handle.seek(max(0, os.path.getsize(handle.name) - 4000))
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """The whole process group: a converter (LibreOffice) the parser started dies with it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        for conn in (self._out, self._in):
            conn.close()  # EOF on its inbox: an idle worker exits by itself
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        self._stderr.close()
        shutil.rmtree(self.home, ignore_errors=True)


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


class ParsePool:
    """At most `size` documents parsed at once, each in a worker process; thread-safe."""

    def __init__(self, size: int = 2, limits: Limits | None = None, parser: str = PRODUCT_PARSER) -> None:
        self.limits = limits or Limits()
        self.parser = parser  # "module:function" imported in the worker (tests name hostile parsers)
        self._root = Path(tempfile.mkdtemp(prefix="bendi-parse-"))
        self._ocr_lock = self._root / "ocr.lock"
        self._ocr_lock.touch()
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max(1, size))
        self._lock = threading.Lock()
        self._closed = False
        self.network = ""  # how the last started worker's network ended up ("isolated" or why not)

    def parse(self, path: Path, ocr: OcrReader | None = None) -> ParsedDocument:
        """The parsed document, or DocumentError (ParseFailedError for timeout/crash/memory)."""
        message = {"op": "parse", "path": str(path.resolve()), "parser": self.parser,
                   "timeout_s": self.limits.timeout_s, "ocr_lock": str(self._ocr_lock),
                   "ocr_threads": ocr.threads if ocr is not None else None}  # fmt: skip
        on_page = ocr.on_page if ocr is not None else None
        try:
            raw = self._run(message, on_page)
            return decode_document(raw)
        except BadMessageError as exc:
            raise ParseFailedError(
                f"The parser process sent a malformed document ({exc}).", "bad_output"
            ) from exc
        except ParseFailedError as exc:
            raise ParseFailedError(f"{path.name}: {exc.message}", exc.reason) from None

    def looks_scanned(self, path: Path) -> bool:
        """parsers.looks_scanned in a worker; a file that upsets it is not a scan (it fails later)."""
        try:
            return bool(self._run({"op": "probe", "path": str(path.resolve()), "timeout_s": 30.0}, None))
        except DocumentError:
            return False

    def _run(self, message: dict[str, Any], on_progress: Any) -> Any:
        with self._slots:
            worker = self._take()
            healthy = False
            try:
                result = worker.request(message, on_progress)
                healthy = True
                return result
            except ParseFailedError:
                raise
            except DocumentError:
                healthy = True  # the file's fault, reported by a worker that is still fine
                raise
            finally:
                self._give_back(worker, healthy)

    def _take(self) -> _Worker:
        try:
            worker = self._idle.get_nowait()
            if worker.alive:
                return worker
            worker.close()
        except queue.Empty:
            pass
        if self._closed:
            raise DocumentError("The server is shutting down; add the file again after it restarts.")
        started = time.monotonic()
        worker = _Worker(self._root, self.limits)
        self.network = worker.network
        log.debug("parse worker %s started in %.1f s (network %s)", worker.proc.pid,
                  time.monotonic() - started, worker.network)  # fmt: skip
        return worker

    def _give_back(self, worker: _Worker, healthy: bool) -> None:
        if healthy and worker.alive and worker.documents < self.limits.recycle_after and not self._closed:
            self._idle.put(worker)
            return
        if not healthy:  # after a timeout, crash or memory blow-up nothing in that process is trusted
            worker.kill()
        worker.close()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break
        shutil.rmtree(self._root, ignore_errors=True)


_DEFAULT: ParsePool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> ParsePool:
    """The process-wide pool, sized and limited by the settings at first use."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            from bendi.core.settings import load_settings

            settings = load_settings()
            limits = Limits(memory_mb=settings.kb_parse_memory_mb, timeout_s=settings.kb_parse_timeout_s,
                            recycle_after=max(1, settings.kb_parse_recycle))  # fmt: skip
            _DEFAULT = ParsePool(settings.kb_parse_workers, limits)
            import atexit

            atexit.register(_DEFAULT.close)
        return _DEFAULT
