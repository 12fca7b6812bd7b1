"""Supervised subprocess engines: start a server, wait until healthy, notice a crash, say why."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from bendi.core.errors import EngineError
from bendi.engines.launch import LaunchPlan

ProcessState = Literal["starting", "ready", "failed", "stopped"]
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class ProcessStatus:
    state: ProcessState
    pid: int | None
    reason: str | None = None  # why it failed, with the last lines of its log


class SupervisedProcess:
    """One engine server process. It never restarts silently: a crash marks it failed with a reason,
    and the pool decides what to do (report the model unavailable, or start it again)."""

    def __init__(self, plan: LaunchPlan, log_path: Path) -> None:
        self.plan = plan
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._state: ProcessState = "stopped"
        self._reason: str | None = None

    def status(self) -> ProcessStatus:
        self._poll()
        return ProcessStatus(self._state, self._proc.pid if self._proc else None, self._reason)

    async def start(self, *, ready_timeout_s: float = 600.0, poll_interval_s: float = 0.25) -> None:
        """Start the process and wait until its health endpoint answers 200, or fail with the log tail."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(dict(self.plan.env))
        with open(self.log_path, "ab") as log:
            try:
                # start_new_session: a SIGINT to bendi's terminal must not kill the engine mid-request;
                # bendi stops it explicitly on shutdown.
                self._proc = subprocess.Popen(
                    list(self.plan.argv),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                self._fail(f"could not start {self.plan.argv[0]!r}: {exc}. Is {self.plan.kind} installed?")
                raise EngineError(self._reason or "") from exc
        self._state = "starting"
        deadline = time.monotonic() + ready_timeout_s
        url = self.plan.base_url + self.plan.health_path
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                current = self.status()
                if current.state == "failed":
                    raise EngineError(current.reason or "engine process failed")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        self._state = "ready"
                        return
                await asyncio.sleep(poll_interval_s)
        await self.stop()
        self._fail(f"{self.plan.kind} did not become ready within {ready_timeout_s:.0f} s")
        raise EngineError(self._reason or "")

    async def stop(self, *, grace_s: float = 10.0) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._state = "stopped" if self._state != "failed" else "failed"
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
        self._state = "stopped"

    def _poll(self) -> None:
        if self._proc is None or self._state in ("failed", "stopped"):
            return
        code = self._proc.poll()
        if code is not None:
            self._fail(f"{self.plan.kind} exited with code {code}")

    def _fail(self, what: str) -> None:
        self._state = "failed"
        tail = self._log_tail()
        self._reason = f"{what}. Last log lines ({self.log_path}):\n{tail}" if tail else f"{what}."

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16384))
                lines = deque(log.read().decode("utf-8", "replace").splitlines(), maxlen=LOG_TAIL_LINES)
        except OSError:
            return ""
        return "\n".join(lines)
