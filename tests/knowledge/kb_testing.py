"""Shared helpers of the knowledge tests (a plain module: test files and conftest both import it)."""

from __future__ import annotations

from pathlib import Path

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
