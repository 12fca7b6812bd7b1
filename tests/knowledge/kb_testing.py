"""Shared helpers of the knowledge tests (a plain module: test files and conftest both import it)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from bendi.core.paths import DataPaths
from bendi.knowledge.embedding import make_embedder
from bendi.knowledge.library import KnowledgeBases
from server_process import ServerProcess
from server_process import free_port as free_port  # re-exported for the knowledge tests

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


# `bendi serve` with a knowledge-area BENDI_HOME: KbServer(home, port, env).
KbServer = ServerProcess


def serve_mining_law(home: Path, mining_dir: Path, env: dict[str, str]) -> KbServer:
    """`bendi serve` with the base `mining` holding one law (矿山安全法), indexed over HTTP."""
    proc = KbServer(home, free_port(), env)
    try:
        proc.wait_ready(timeout_s=90)
        with httpx.Client(base_url=proc.base_url, timeout=280) as client:
            assert client.post("/v1/knowledge-bases", json={"name": "mining"}).status_code == 201
            law = mining_dir / MINING_SUBSET[0]
            files = [("files", (law.name, law.read_bytes(), "text/markdown"))]
            assert client.post("/v1/knowledge-bases/mining/documents", files=files).status_code == 202
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                docs = client.get("/v1/knowledge-bases/mining/documents").json()["data"]
                if docs and all(d["status"] == "indexed" for d in docs):
                    return proc
                time.sleep(0.5)
            raise AssertionError(f"ingestion did not finish: {docs}")
    except BaseException:
        proc.stop()
        raise
