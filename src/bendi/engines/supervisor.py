"""Keep one engine server running: start it, restart it with backoff when it crashes, stop it for good."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import httpx

from bendi.core.errors import EngineError, OverloadedError
from bendi.engines.launch import LaunchPlan
from bendi.engines.process import SupervisedProcess

log = logging.getLogger("bendi.engines")
SupervisorState = Literal["starting", "ready", "restarting", "failed", "stopped"]
PlanForPort = Callable[[int], LaunchPlan]
MAX_BACKOFF_S = 60.0
STABLE_AFTER_S = 600.0  # an engine that ran this long without crashing gets its restart budget back
WATCH_INTERVAL_S = 0.5
MAX_HEALTH_INTERVAL_S = 5.0  # a health request every few seconds at most (the engine serves users)
PORT_RETRIES = 3


def free_loopback_port() -> int:
    """A port nothing listens on now (the engine binds it a moment later; a lost race is retried)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def backoff_s(restart: int) -> float:
    """Seconds to wait before restart number `restart` (1, 2, 4, ... up to a minute)."""
    return min(MAX_BACKOFF_S, 2.0 ** max(0, restart - 1))


class EngineSupervisor:
    """One engine server for one model, on a private loopback port.

    `start()` returns when the first start is healthy or raises EngineError with the reason. After
    that a watcher notices a crash and restarts it after 1, 2, 4, ... s, at most `restart_max` times
    in a row; then the engine is failed for good and `check()` says why. While it restarts,
    `check()` raises OverloadedError (503 with Retry-After) so clients know to retry.

    With `hang_timeout_s` > 0 the watcher also asks the engine's health endpoint every few seconds;
    an engine whose process is alive but has not answered it for `hang_timeout_s` (a deadlock, a
    wedged GPU driver) is killed with its whole process group and restarted like a crashed one."""

    def __init__(
        self,
        plan_for_port: PlanForPort,
        log_path: Path,
        *,
        what: str,
        start_timeout_s: float,
        restart_max: int,
        hang_timeout_s: float = 0.0,
    ) -> None:
        self._plan_for_port = plan_for_port
        self._log_path = log_path
        self._what = what  # e.g. "the vllm engine for smollm2-hf"
        self._start_timeout_s = start_timeout_s
        self._restart_max = max(0, restart_max)
        self._hang_timeout_s = max(0.0, hang_timeout_s)
        self._health_interval_s = min(MAX_HEALTH_INTERVAL_S, max(WATCH_INTERVAL_S, self._hang_timeout_s / 4))
        self._last_healthy_s = self._last_probe_s = 0.0
        self.last_failure: str | None = None  # why the engine was last restarted (a crash or a hang)
        self._process: SupervisedProcess | None = None
        self._port = 0
        self._watcher: asyncio.Task[None] | None = None
        self.state: SupervisorState = "stopped"
        self.restarts = 0  # crashes in a row (reset once the engine has been stable for a while)
        self.restarts_total = 0
        self.failure: str | None = None
        self._start_duration_s = 30.0
        self._restart_at_s = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def process(self) -> SupervisedProcess | None:
        return self._process

    async def start(self) -> None:
        self.state = "starting"
        try:
            await self._start_once()
        except BaseException as exc:
            self.state = "failed"
            self.failure = getattr(exc, "message", None) or str(exc)
            raise
        self.state = "ready"
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _start_once(self) -> None:
        """One start, on the same port as before when possible; a port taken meanwhile is retried."""
        for attempt in range(PORT_RETRIES):
            if attempt or not self._port:
                self._port = free_loopback_port()
            process = SupervisedProcess(self._plan_for_port(self._port), self._log_path)
            self._process = process
            began = time.monotonic()
            try:
                await process.start(ready_timeout_s=self._start_timeout_s)
            except EngineError as exc:
                if "Address already in use" in process.log_tail() and attempt + 1 < PORT_RETRIES:
                    continue
                raise EngineError(f"Could not start {self._what}: {exc.message}") from exc
            except BaseException:
                await process.stop()  # cancelled (shutdown during the start): leave nothing behind
                raise
            self._start_duration_s = time.monotonic() - began
            self._last_healthy_s = time.monotonic()
            return

    async def _watch(self) -> None:
        probe_timeout_s = min(2.0, self._hang_timeout_s) if self._hang_timeout_s else 2.0
        async with httpx.AsyncClient(timeout=probe_timeout_s, trust_env=False) as client:
            while self.state in ("ready", "restarting"):
                await asyncio.sleep(WATCH_INTERVAL_S)
                process = self._process
                if process is None or self.state != "ready":
                    continue
                status = process.status()
                if status.state != "failed":
                    if self.restarts and time.monotonic() - process.started_s > STABLE_AFTER_S:
                        self.restarts = 0
                    if await self._hung(process, client):
                        await self._kill_hung(process)
                    continue
                log.warning("engine crashed", extra={"engine": self._what, "reason": status.reason})
                self.last_failure = status.reason or "it stopped"
                await self._restart(self.last_failure)

    async def _hung(self, process: SupervisedProcess, client: httpx.AsyncClient) -> bool:
        """Ask the health endpoint (every few seconds); True once it has not answered 200 for
        hang_timeout_s while the process kept running."""
        now = time.monotonic()
        if not self._hang_timeout_s or now - self._last_probe_s < self._health_interval_s:
            return False
        self._last_probe_s = now
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(process.plan.base_url + process.plan.health_path)).status_code == 200:
                self._last_healthy_s = time.monotonic()
        return time.monotonic() - self._last_healthy_s > self._hang_timeout_s

    async def _kill_hung(self, process: SupervisedProcess) -> None:
        silent_s = time.monotonic() - self._last_healthy_s
        what = (
            f"{self._what} was running but did not answer its health check for {silent_s:.0f} s "
            f"(BENDI_ENGINE_HANG_TIMEOUT_S={self._hang_timeout_s:g}), so bendi killed it as hung"
        )
        log.warning("engine hung", extra={"engine": self._what, "silent_s": round(silent_s, 1)})
        await process.kill_hung(what)
        self.last_failure = process.status().reason or what
        await self._restart(self.last_failure)

    async def _restart(self, reason: str) -> None:
        while True:
            self.restarts += 1
            self.restarts_total += 1
            if self.restarts > self._restart_max:
                self.state = "failed"
                self.failure = (
                    f"{self._what} crashed {self.restarts} times in a row and bendi stopped restarting it "
                    f"(BENDI_ENGINE_RESTART_MAX={self._restart_max}). Fix the cause below, then restart bendi. "
                    f"Last failure: {reason}"
                )
                log.error("engine failed for good", extra={"engine": self._what})
                return
            self.state = "restarting"
            wait = backoff_s(self.restarts)
            self._restart_at_s = time.monotonic() + wait
            await asyncio.sleep(wait)
            try:
                await self._start_once()
            except EngineError as exc:
                reason = exc.message
                continue
            self.state = "ready"
            log.warning("engine restarted", extra={"engine": self._what, "restarts": self.restarts})
            return

    def check(self) -> None:
        """Raise the error a request should get when the engine cannot take it now."""
        if self.state == "ready":
            return
        if self.state in ("restarting", "starting"):
            wait = max(0.0, self._restart_at_s - time.monotonic()) + self._start_duration_s
            raise OverloadedError(
                f"{self._what[0].upper()}{self._what[1:]} stopped unexpectedly and is restarting "
                f"(restart {self.restarts} of at most {self._restart_max}). Retry in about {wait:.0f} s.",
                retry_after_s=max(1.0, wait),
            )
        raise EngineError(self.failure or f"{self._what} is not running; restart bendi to start it again.")

    def crashed_now(self) -> bool:
        """True when the process has exited (checked at once, not at the watcher's next look)."""
        process = self._process
        return self.state != "ready" or process is None or process.status().state == "failed"

    async def stop(self) -> None:
        self.state = "stopped"
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
        if self._process is not None:
            await self._process.stop()
