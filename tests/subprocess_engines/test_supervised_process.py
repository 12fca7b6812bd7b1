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


# An engine that, like vLLM, starts a child of its own (vLLM's EngineCore) and then serves HTTP.
FAKE_ENGINE = """
import http.server, socketserver, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
socketserver.TCPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def _fake_engine_plan(port: int) -> LaunchPlan:
    return LaunchPlan("vllm", (sys.executable, "-c", FAKE_ENGINE, str(port)), port, "m", health_path="/")


def _group(pgid: int) -> list[int]:
    import os

    import psutil

    alive = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return alive


def _wait_until_gone(pgid: int, timeout_s: float = 5.0) -> list[int]:
    import time

    deadline = time.monotonic() + timeout_s
    while _group(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _group(pgid)


def test_a_crash_takes_the_engines_own_children_with_it(tmp_path: Path, port: int) -> None:
    import os
    import signal

    import psutil

    supervised = SupervisedProcess(_fake_engine_plan(port), tmp_path / "engine.log")

    async def scenario() -> None:
        await supervised.start(ready_timeout_s=30)
        group = supervised.pid
        assert group is not None and len(_group(group)) == 3  # watchdog, engine, engine's child
        engine = psutil.Process(group).children()[0]
        os.kill(engine.pid, signal.SIGKILL)  # the engine dies; its child would live on as an orphan
        for _ in range(100):
            if supervised.status().state == "failed":
                break
            await asyncio.sleep(0.05)
        assert "was killed by SIGKILL" in (supervised.status().reason or "")
        assert _wait_until_gone(group) == []

    asyncio.run(scenario())


def test_stop_ends_the_whole_group(tmp_path: Path, port: int) -> None:
    supervised = SupervisedProcess(_fake_engine_plan(port), tmp_path / "engine.log")

    async def scenario() -> None:
        await supervised.start(ready_timeout_s=30)
        group = supervised.pid
        assert group is not None
        await supervised.stop(grace_s=5)
        assert _wait_until_gone(group, 2) == []
        assert supervised.status().state == "stopped"

    asyncio.run(scenario())


HOLDER = """
import asyncio, sys
from pathlib import Path
from bendi.engines.launch import LaunchPlan
from bendi.engines.process import SupervisedProcess
FAKE, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
async def main():
    plan = LaunchPlan("vllm", (sys.executable, "-c", FAKE, str(port)), port, "m", health_path="/")
    supervised = SupervisedProcess(plan, Path(log))
    await supervised.start(ready_timeout_s=30)
    print(supervised.pid, flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


@pytest.mark.parametrize("from_thread", [False, True])
def test_kill_9_of_bendi_leaves_no_engine_process(tmp_path: Path, port: int, from_thread: bool) -> None:
    """The watchdog notices its parent is gone and kills the engine's whole group. Started from a
    worker thread too: the parent-death signal fires when that thread ends, not bendi, and must not
    kill a healthy engine."""
    import subprocess
    import time

    holder_code = HOLDER
    if from_thread:
        # A thread that starts the engine, then ends.
        holder_code = HOLDER.replace(
            "    await supervised.start(ready_timeout_s=30)",
            "    import threading\n"
            "    thread = threading.Thread(target=asyncio.run, args=(supervised.start(ready_timeout_s=30),))\n"
            "    thread.start()\n"
            "    thread.join()",
        )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code, FAKE_ENGINE, str(port), str(tmp_path / "engine.log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        group = int(holder.stdout.readline())
        time.sleep(0.5)
        assert len(_group(group)) == 3, "the engine must survive the end of the thread that started it"
        holder.kill()
        holder.wait()
        assert _wait_until_gone(group) == []
    finally:
        holder.kill()
        holder.wait()


def test_failures_are_explained_from_the_last_telling_line() -> None:
    from bendi.engines.process import explain

    oom = "WARNING No module named 'intel_extension_for_pytorch'\nERROR torch.OutOfMemoryError: CUDA out of memory"
    assert "ran out of memory" in (explain(oom, "vllm") or "")
    arch = "ValueError: Model architectures ['FooForCausalLM'] are not supported for now."
    assert "does not support this model's architecture" in (explain(arch, "vllm") or "")
    missing = "ModuleNotFoundError: No module named 'vllm'"
    assert "vllm is not installed" in (explain(missing, "vllm") or "")
    assert "port was already taken" in (explain("OSError: [Errno 98] Address already in use", "vllm") or "")
    assert explain("INFO all good", "vllm") is None


def test_the_supervisor_restarts_a_crashed_engine_then_gives_up(tmp_path: Path) -> None:
    import os
    import signal

    from bendi.core.errors import OverloadedError
    from bendi.engines.supervisor import EngineSupervisor

    async def scenario() -> None:
        supervisor = EngineSupervisor(
            _fake_engine_plan, tmp_path / "engine.log", what="the vllm engine for m",
            start_timeout_s=30, restart_max=1,
        )  # fmt: skip
        await supervisor.start()
        first = supervisor.process
        assert first is not None and first.pid is not None
        os.killpg(first.pid, signal.SIGKILL)
        for _ in range(40):
            if supervisor.state == "restarting":
                break
            await asyncio.sleep(0.05)
        with pytest.raises(OverloadedError, match="is restarting") as refused:
            supervisor.check()
        assert refused.value.retry_after_s >= 1
        for _ in range(200):
            if supervisor.state == "ready":
                break
            await asyncio.sleep(0.05)
        supervisor.check()
        second = supervisor.process
        assert second is not None and second is not first and second.pid is not None
        os.killpg(second.pid, signal.SIGKILL)  # a second crash in a row: over restart_max=1
        for _ in range(100):
            if supervisor.state == "failed":
                break
            await asyncio.sleep(0.05)
        with pytest.raises(EngineError, match="stopped restarting"):
            supervisor.check()
        await supervisor.stop()

    asyncio.run(scenario())
