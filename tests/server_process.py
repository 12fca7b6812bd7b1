"""A real `bendi serve` subprocess on a free loopback port, for the tests that need one (a plain
module: conftest.py and the test areas' helpers import it)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A real `bendi serve` subprocess on a free loopback port."""

    def __init__(
        self,
        home: Path,
        port: int,
        extra_env: dict[str, str],
        args: tuple[str, ...] = (),
        *,
        scheme: str = "http",
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.port = port
        self.base_url = f"{scheme}://127.0.0.1:{port}"
        self.verify = verify  # for https: the context that trusts the server's certificate
        env = dict(os.environ, BENDI_HOME=str(home), BENDI_THREADS="2", PYTHONUNBUFFERED="1")
        env.update(extra_env)
        self.log_path = home / "server-test.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in stop())
        bendi = Path(sys.executable).parent / "bendi"
        self.proc = subprocess.Popen(
            [str(bendi), "serve", "--port", str(port), *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bendi serve exited early:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1.0, verify=self.verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"bendi serve did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def terminal_signals() -> None:
    """preexec_fn for a child that stands for a command typed at a terminal: Ctrl-C (SIGINT) acts
    on it even when the test run was started in the background, where the shell ignores SIGINT and
    every child inherits that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
