"""Supervised subprocess engines: start a server behind the watchdog, wait until healthy, say why it failed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from bendi.core.errors import EngineError
from bendi.engines import watchdog
from bendi.engines.launch import LaunchPlan

ProcessState = Literal["starting", "ready", "failed", "stopped"]
LOG_TAIL_LINES = 20
EXPLAIN_LINES = 200  # how far back an explanation is looked for
STOP_GRACE_S = 15.0
# Run by file path, not imported, in the engine's own interpreter (vLLM's venv has no bendi): the
# module is standard library only for that reason.
WATCHDOG = Path(watchdog.__file__)
# Variables of bendi's own interpreter that must not leak into an engine's (vLLM has its own venv).
PRIVATE_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")

# (pattern in the log tail, plain explanation): the first match explains a failed start or a crash.
EXPLANATIONS: tuple[tuple[str, str], ...] = (
    (r"could not start '.*?': \[Errno 2\]|No such file or directory: '.*?(vllm|sglang|python)",
     "The engine's program was not found. Is {kind} installed? Run `bash scripts/install_vllm.sh` (vLLM) "
     "and point BENDI_VLLM_PYTHON (or BENDI_SGLANG_PYTHON) at the python it prints."),
    (r"No module named '?(vllm|sglang)\b",
     "{kind} is not installed in the engine's python. Run `bash scripts/install_vllm.sh` (vLLM) and point "
     "BENDI_VLLM_PYTHON (or BENDI_SGLANG_PYTHON) at the python it prints."),
    (r"(ModuleNotFoundError|ImportError): .*?No module named '?([\w.]+)",
     "A Python package the engine needs is missing from its environment (see the last lines). Install it "
     "into the engine's python, or reinstall the engine (`bash scripts/install_vllm.sh`)."),
    (r"Address already in use|\[Errno 98\]",
     "The engine's port was already taken by another program; bendi picks a free port, so retry."),
    (r"[Oo]ut of memory|OutOfMemoryError|CUDA error: out of memory|MemoryError|Cannot allocate memory|"
     r"No available memory for the cache blocks|Insufficient memory|not enough memory",
     "The engine ran out of memory. Use a smaller model or quantization, a smaller context (--ctx) or "
     "fewer parallel requests (--parallel), or free memory (GPU: lower gpu_memory_utilization)."),
    (r"larger than the maximum number of tokens that can be stored in KV cache|"
     r"max_model_len.{0,80}(greater|larger) than|KV cache is needed, which is larger",
     "The context window does not fit the engine's KV cache. Lower the context (--ctx / "
     "BENDI_CONTEXT_TOKENS) or give the engine more memory."),
    (r"architectures? \[?.*?\]? (is|are) not supported|Model architectures .* are not supported|"
     r"is not supported for now|Unsupported model|model type .* not recognized|does not recognize this architecture",
     "{kind} does not support this model's architecture (see config.json's \"architectures\"). Upgrade "
     "{kind}, or serve a GGUF of the model with llama.cpp (--engine llama.cpp)."),
    (r"trust_remote_code|trust-remote-code",
     "This model needs its own Python code from the model directory, which bendi does not run. Use a "
     "model whose architecture {kind} supports natively."),
    (r"Found no NVIDIA driver|libcuda\.so|CUDA driver version is insufficient|no CUDA-capable device",
     "This {kind} is a CUDA build but no usable NVIDIA GPU or driver was found. Install the CPU build "
     "(`bash scripts/install_vllm.sh`) or check the GPU driver (nvidia-smi)."),
    (r"does not support ray",
     "This {kind} build cannot use Ray (the CPU build cannot): run multi-node serving with a CUDA build."),
)  # fmt: skip


def explain(log_tail: str, kind: str) -> str | None:
    """A plain sentence for the last telling line of an engine's log, or None. The last line wins:
    an engine logs harmless warnings (an optional module missing) long before the error that ends it."""
    for line in reversed(log_tail.splitlines()):
        for pattern, sentence in EXPLANATIONS:
            if re.search(pattern, line):
                return sentence.format(kind=kind)
    return None


def exit_description(kind: str, code: int) -> str:
    """`code` as the watchdog reports it: the engine's exit status, or 128 + the signal that killed it."""
    signum = -code if code < 0 else code - 128 if code > 128 else 0  # < 0: the watchdog itself was killed
    if signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
        name = signal.Signals(signum).name
        hint = " (the out-of-memory killer does this)" if name == "SIGKILL" else ""
        return f"{kind} was killed by {name}{hint} (exited with code {code})"
    return f"{kind} exited with code {code}"


@dataclass(frozen=True)
class ProcessStatus:
    state: ProcessState
    pid: int | None
    reason: str | None = None  # why it failed, with a plain explanation and the last lines of its log


class SupervisedProcess:
    """One engine server process, started once. A crash marks it failed with a reason; the
    supervisor (engines/supervisor.py) decides whether to start another.

    The process runs under the watchdog shim as the leader of its own process group, so stopping
    it (SIGTERM to the group, SIGKILL after a grace) reaches every process the engine started, and
    `kill -9` of bendi kills the group too."""

    def __init__(self, plan: LaunchPlan, log_path: Path) -> None:
        self.plan = plan
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._state: ProcessState = "stopped"
        self._reason: str | None = None
        self._log_start = 0  # where this start's lines begin in the (appended) log
        self.started_s = 0.0

    @property
    def pid(self) -> int | None:
        """The watchdog's pid, which is also the engine's process group id."""
        return self._proc.pid if self._proc else None

    def status(self) -> ProcessStatus:
        self._poll()
        return ProcessStatus(self._state, self.pid, self._reason)

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
        env.update(dict(self.plan.env))
        return env

    async def start(self, *, ready_timeout_s: float = 600.0, poll_interval_s: float = 0.25) -> None:
        """Start the process and wait until its health endpoint answers 200, or fail with the log tail."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-I", str(WATCHDOG), str(os.getpid()), "--", *self.plan.argv]
        with open(self.log_path, "ab") as log:
            self._log_start = log.tell()
            log.write(f"--- bendi starts {self.plan.kind}: {' '.join(self.plan.argv)}\n".encode())
            log.flush()
            # A new session: Ctrl-C in bendi's terminal must not kill the engine mid-request (bendi
            # stops it itself), and the group id lets bendi and the watchdog stop all of it.
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                start_new_session=True,
            )
        self._state, self._reason, self.started_s = "starting", None, time.monotonic()
        deadline = time.monotonic() + ready_timeout_s
        url = self.plan.base_url + self.plan.health_path
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                current = self.status()
                if current.state == "failed":
                    raise EngineError(current.reason or f"{self.plan.kind} failed to start.")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        self._state = "ready"
                        return
                await asyncio.sleep(poll_interval_s)
        await self.stop()
        self._fail(
            f"{self.plan.kind} did not become ready within {ready_timeout_s:.0f} s "
            "(BENDI_ENGINE_START_TIMEOUT_S); it was stopped"
        )
        raise EngineError(self._reason or "")

    async def stop(self, *, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM to the whole group, SIGKILL to what is left after `grace_s`."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        self.kill_group()
        await asyncio.to_thread(proc.wait)
        if self._state != "failed":
            self._state = "stopped"

    async def kill_hung(self, what: str, *, grace_s: float = 2.0) -> None:
        """Mark the process failed with `what` (and its log tail), then stop its whole group: an
        engine that is alive but no longer answers is treated like one that crashed."""
        self._fail(what)
        await self.stop(grace_s=grace_s)

    def kill_group(self) -> None:
        """SIGKILL every process left in the engine's group (the group outlives its leader)."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def _poll(self) -> None:
        if self._proc is None or self._state in ("failed", "stopped"):
            return
        code = self._proc.poll()
        if code is not None:
            self.kill_group()
            self._fail(exit_description(self.plan.kind, code))

    def _fail(self, what: str) -> None:
        self._state = "failed"
        tail = self.log_tail()
        why = explain(self.log_tail(EXPLAIN_LINES), self.plan.kind)
        text = f"{what}. {why}" if why else f"{what}."
        self._reason = f"{text}\nLast lines of its log ({self.log_path}):\n{tail}" if tail else text

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last `lines` lines this start wrote to the log."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(self._log_start, log.tell() - 65536))
                kept = deque(log.read().decode("utf-8", "replace").splitlines(), maxlen=lines)
        except OSError:
            return ""
        return "\n".join(kept)
