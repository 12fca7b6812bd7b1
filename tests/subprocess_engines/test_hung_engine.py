"""An engine that is alive but stops answering its health check is killed (whole group) and restarted."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import psutil

from bendi.engines.launch import LaunchPlan
from bendi.engines.supervisor import EngineSupervisor

# Like vLLM: a child process of its own, then HTTP. Its first start answers /health until the file
# `hang` appears, then blocks every request forever (a deadlocked engine: the process lives on).
# Later starts always answer.
HANGING_ENGINE = r"""
import http.server, os, subprocess, sys, time
port, state = int(sys.argv[1]), sys.argv[2]
first = not os.path.exists(os.path.join(state, "started"))
open(os.path.join(state, "started"), "a").write(f"{os.getpid()}\n")
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        while first and os.path.exists(os.path.join(state, "hang")):
            time.sleep(1)
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


def _hanging_engine(tmp_path: Path, *, hang_timeout_s: float) -> tuple[Path, EngineSupervisor]:
    """A supervisor over the fake engine that stops answering its health check once `state/hang` exists."""
    state = tmp_path / "state"
    state.mkdir()

    def plan(port: int) -> LaunchPlan:
        argv = (sys.executable, "-c", HANGING_ENGINE, str(port), str(state))
        return LaunchPlan("vllm", argv, port, "m", health_path="/health")

    supervisor = EngineSupervisor(
        plan, tmp_path / "engine.log", what="the vllm engine for m",
        start_timeout_s=30, restart_max=2, hang_timeout_s=hang_timeout_s,
    )  # fmt: skip
    return state, supervisor


def test_a_hung_engine_is_killed_with_its_group_and_restarted(tmp_path: Path) -> None:
    state, supervisor = _hanging_engine(tmp_path, hang_timeout_s=2.0)

    async def scenario() -> None:
        await supervisor.start()
        first = supervisor.process
        assert first is not None and first.pid is not None
        assert len(_group_alive(first.pid)) >= 2  # the watchdog, the engine and its child
        await asyncio.sleep(3.0)  # healthy for longer than the hang timeout: nothing happens
        assert supervisor.process is first and supervisor.restarts_total == 0
        (state / "hang").touch()
        hung_at = time.monotonic()
        while supervisor.process is first and time.monotonic() - hung_at < 20:
            await asyncio.sleep(0.1)
        assert supervisor.process is not first, "the hung engine was not replaced"
        # Killed within the timeout plus one health interval and the kill grace.
        assert time.monotonic() - hung_at < 2.0 + 0.5 + 2.0 + 2.5
        assert _group_alive(first.pid) == []  # the engine's own child went with it
        assert "did not answer its health check" in (supervisor.last_failure or "")
        assert "BENDI_ENGINE_HANG_TIMEOUT_S" in (supervisor.last_failure or "")
        while supervisor.state != "ready" and time.monotonic() - hung_at < 30:
            await asyncio.sleep(0.1)
        supervisor.check()  # serving again
        assert supervisor.restarts_total == 1
        assert len((state / "started").read_text().split()) == 2
        await asyncio.sleep(3.0)  # the new engine answers: no further restart
        assert supervisor.restarts_total == 1
        second = supervisor.process
        await supervisor.stop()
        assert second is not None and second.pid is not None and _group_alive(second.pid) == []

    asyncio.run(scenario())


def test_hang_detection_is_off_at_zero(tmp_path: Path) -> None:
    state, supervisor = _hanging_engine(tmp_path, hang_timeout_s=0)

    async def scenario() -> None:
        await supervisor.start()
        first = supervisor.process
        (state / "hang").touch()
        await asyncio.sleep(4.0)
        assert supervisor.process is first and supervisor.restarts_total == 0
        assert supervisor.state == "ready"
        await supervisor.stop()

    asyncio.run(scenario())
