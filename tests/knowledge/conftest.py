"""Knowledge-area fixtures: one embedding cache for the whole session (embedding is the slow part on
CPU, and the cache is keyed by content, so sharing it changes no behaviour), and a small real
mining-safety knowledge base built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kb_testing import MINING_SUBSET, KbServer, knowledge_for, make_home, serve_mining_law

from bendi.knowledge.ingest import ingest_paths
from bendi.knowledge.library import KnowledgeBase, KnowledgeBases


@pytest.fixture(scope="session")
def kb_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kb-embedding-cache")


@pytest.fixture()
def kb_home(tmp_path: Path, kb_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = make_home(tmp_path / "home", kb_cache_dir)
    monkeypatch.setenv("BENDI_HOME", str(home))
    return home


@pytest.fixture()
def knowledge(kb_home: Path) -> Iterator[KnowledgeBases]:
    kbs = knowledge_for(kb_home)
    yield kbs
    kbs.close()


@pytest.fixture(scope="session")
def mining_dir(shared_dir: Path) -> Path:
    return shared_dir / "rag-eval-data" / "mining-safety-cn"


@pytest.fixture(scope="session")
def mining_kb(
    tmp_path_factory: pytest.TempPathFactory, kb_cache_dir: Path, mining_dir: Path
) -> KnowledgeBase:
    """A real knowledge base of three mining/work-safety regulations, built once."""
    home = make_home(tmp_path_factory.mktemp("mining") / "home", kb_cache_dir)
    kb = knowledge_for(home).create("mining")
    outcomes = ingest_paths(kb, [mining_dir / rel for rel in MINING_SUBSET])
    assert [o.status for o in outcomes] == ["indexed"] * len(MINING_SUBSET), outcomes
    return kb


@pytest.fixture(scope="module")
def mining_law_server(
    tmp_path_factory: pytest.TempPathFactory, kb_cache_dir: Path, mining_dir: Path
) -> Iterator[KbServer]:
    """A `bendi serve` per test module whose base `mining` holds 矿山安全法, indexed over HTTP."""
    home = make_home(tmp_path_factory.mktemp("kb-server") / "home", kb_cache_dir)
    proc = serve_mining_law(home, mining_dir, {"BENDI_CONTEXT_TOKENS": "2048"})
    yield proc
    proc.stop()
