"""Shared helpers of the knowledge tests (a plain module: test files and conftest both import it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bendi.core.paths import DataPaths
from bendi.knowledge.embedding import make_embedder
from bendi.knowledge.library import KnowledgeBases

MINING_SUBSET = (
    "lawrefbook/社会法/矿山安全法(2009-08-27).md",
    "lawrefbook/行政法规/安全生产许可证条例(2014-07-29).md",
    "lawrefbook/行政法规/生产安全事故应急条例(2019-02-17).md",
)


def make_home(root: Path, cache_dir: Path) -> Path:
    """A BENDI_HOME whose cache/ is the session's shared embedding cache."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cache").symlink_to(cache_dir, target_is_directory=True)
    return root


def knowledge_for(home: Path) -> KnowledgeBases:
    return KnowledgeBases(
        DataPaths(home).ensure(), "multilingual-e5-small", lambda n: make_embedder(n, threads=2)
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KbServer:
    """A real `bendi serve` on a loopback port with a given BENDI_HOME."""

    def __init__(self, home: Path, port: int, env: dict[str, str]) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = home / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in stop())
        full_env = dict(os.environ, BENDI_HOME=str(home), BENDI_THREADS="2", PYTHONUNBUFFERED="1", **env)
        bendi = str(Path(sys.executable).parent / "bendi")
        self.proc = subprocess.Popen([bendi, "serve", "--port", str(port)], env=full_env,
                                     stdout=self._log, stderr=subprocess.STDOUT)  # fmt: skip

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "bendi serve exited early:\n" + self.log_path.read_text(errors="replace")[-4000:]
                )
            try:
                if httpx.get(self.base_url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("bendi serve did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
