"""SupervisedProcess with real child processes: ready on health, crash and hang become clear reasons."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bendi.core.errors import EngineError
from bendi.engines.launch import LaunchPlan
from bendi.engines.process import SupervisedProcess


def _http_server_plan(port: int) -> LaunchPlan:
    argv = (sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1")
    return LaunchPlan("llama-server", argv, port, "test", health_path="/")


def test_starts_when_healthy_then_reports_a_later_crash(tmp_path: Path, port: int) -> None:
    supervised = SupervisedProcess(_http_server_plan(port), tmp_path / "engine.log")

    async def scenario() -> None:
        await supervised.start(ready_timeout_s=30)
        status = supervised.status()
        assert status.state == "ready" and status.pid
        # The engine dies under us (OOM killer, driver fault): the next look says so, with a reason.
        import os
        import signal

        os.kill(status.pid, signal.SIGKILL)
        for _ in range(100):
            if supervised.status().state == "failed":
                break
            await asyncio.sleep(0.05)
        crashed = supervised.status()
        assert crashed.state == "failed"
        assert "exited with code" in (crashed.reason or "")

    asyncio.run(scenario())


def test_a_process_that_dies_at_start_fails_with_its_last_log_lines(tmp_path: Path, port: int) -> None:
    argv = (sys.executable, "-c", "import sys; print('CUDA error: out of memory'); sys.exit(3)")
    supervised = SupervisedProcess(LaunchPlan("vllm", argv, port, "m"), tmp_path / "engine.log")
    with pytest.raises(EngineError) as info:
        asyncio.run(supervised.start(ready_timeout_s=30))
    assert "exited with code 3" in info.value.message
    assert "CUDA error: out of memory" in info.value.message


def test_a_process_that_never_gets_ready_is_stopped_after_the_timeout(tmp_path: Path, port: int) -> None:
    argv = (sys.executable, "-c", "import time; time.sleep(60)")
    supervised = SupervisedProcess(LaunchPlan("sglang", argv, port, "m"), tmp_path / "engine.log")
    with pytest.raises(EngineError, match="did not become ready"):
        asyncio.run(supervised.start(ready_timeout_s=1.0))
    assert supervised.status().state == "failed"


def test_a_missing_binary_says_to_install_it(tmp_path: Path, port: int) -> None:
    plan = LaunchPlan("vllm", ("/nonexistent/vllm", "serve", "m"), port, "m")
    with pytest.raises(EngineError, match="Is vllm installed"):
        asyncio.run(SupervisedProcess(plan, tmp_path / "engine.log").start(ready_timeout_s=5))
