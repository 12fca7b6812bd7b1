"""Helpers of the backup and migration tests (a plain module the test files import)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx

import team_home
from server_process import ServerProcess, free_port

ADMIN = "boss"
ADMIN_PASSWORD = "Adm1n-pass-for-backups"
KB = "/v1/knowledge-bases"
QUERY = "矿井通风 瓦斯检查"
# Two small documents written for these tests (mine-safety wording, Chinese and English); the
# previous-release fixture was made from the same files.
DOCS_DIR = Path(__file__).parent / "fixtures" / "release-docs"
SAFETY_DOCS = {path.name: path.read_text(encoding="utf-8") for path in sorted(DOCS_DIR.iterdir())}


def bendi(*args: str, home: Path | None = None, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real `bendi` command (in this venv) with BENDI_HOME pointing at `home`."""
    env = dict(os.environ, BENDI_THREADS="2")
    if home is not None:
        env["BENDI_HOME"] = str(home)
    exe = Path(sys.executable).parent / "bendi"
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=timeout_s)


def init_team_home(home: Path) -> str:
    """Team mode with one administrator; returns an admin-scope API key."""
    return team_home.init_team_home(home, ADMIN, ADMIN_PASSWORD, key_name="backup-tests")


def start_server(home: Path, env: dict[str, str] | None = None) -> ServerProcess:
    server = ServerProcess(home, free_port(), env or {})
    try:
        server.wait_ready(timeout_s=120)
    except BaseException:
        server.stop()
        raise
    return server


def wait_indexed(client: httpx.Client, kb: str, timeout_s: float = 180) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    docs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        docs = client.get(f"{KB}/{kb}/documents").json()["data"]
        if docs and all(d["status"] not in ("queued", "processing") for d in docs):
            return docs
        time.sleep(0.3)
    raise AssertionError(f"ingestion did not finish: {docs}")


def search(client: httpx.Client, kb: str, query: str = QUERY) -> list[tuple[str, str, float]]:
    found = client.post(f"{KB}/{kb}/search", json={"query": query, "top_k": 5})
    assert found.status_code == 200, found.text
    return [(h["file"], h["text"], round(h["score"], 5)) for h in found.json()["data"]]


def hostile_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]],
                    listed: list[dict[str, Any]] | None = None) -> Path:  # fmt: skip
    """A tar with a bendi manifest first (listing `listed`, default: every regular member), then `members`."""
    if listed is None:
        import hashlib

        listed = [{"path": info.name.removeprefix("data/"), "size_bytes": info.size, "kind": "file",
                   "sha256": hashlib.sha256(data or b"").hexdigest()}
                  for info, data in members if info.isreg()]  # fmt: skip
    manifest = json.dumps({"kind": "bendi-backup", "backup_format": 1, "bendi_version": "test",
                           "source_home": "/nowhere", "data_format": None, "files": listed}).encode()  # fmt: skip
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("bendi-backup.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "",
           size: int | None = None) -> tuple[tarfile.TarInfo, bytes | None]:  # fmt: skip
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if size is None else size
    return info, (data if kind == tarfile.REGTYPE and size is None else None)


def write_tiny_gguf(path: Path, name: str, data_bytes: int = 4096) -> Path:
    """A small valid GGUF from the store tests' maker (tests/store/ggufmaker.py)."""
    spec = importlib.util.spec_from_file_location(
        "ggufmaker", Path(__file__).parents[1] / "store" / "ggufmaker.py"
    )
    assert spec is not None and spec.loader is not None
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    written: Path = maker.write_gguf(path, data_bytes, name=name)
    return written
