"""`bendi kb demo`: the mining-safety library ships inside bendi and becomes the `mining` base, once."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bendi.access.scope import KbScope
from bendi.cli.main import main
from bendi.core.settings import load_settings
from bendi.ops import demo
from bendi.services import build_services

ROOT = Path(__file__).resolve().parents[2]
LAW = demo.DEMO_LIBRARY / "lawrefbook" / "社会法" / "矿山安全法(2009-08-27).md"
PERMIT = demo.DEMO_LIBRARY / "lawrefbook" / "行政法规" / "安全生产许可证条例(2014-07-29).md"


def test_demo_library_is_complete_with_its_sources() -> None:
    documents = demo.demo_documents()
    assert len(documents) == 27  # 23 laws and regulations (lawrefbook) + 4 coal-mine rules (coalqa)
    assert sum(1 for d in documents if "coalqa" in d.parts) == 4
    assert sum(d.stat().st_size for d in documents) > 850_000  # 880 KB of text
    source = (demo.DEMO_LIBRARY / "SOURCE.txt").read_text(encoding="utf-8")
    assert "LawRefBook/Laws" in source and "yaosenJ/CoalQA" in source
    assert demo.demo_label(LAW) == "mining-safety-cn/lawrefbook/社会法/矿山安全法(2009-08-27).md"


def test_wheel_carries_the_demo_library(tmp_path: Path) -> None:
    """Package data, so any installation has it, not only this repository's layout."""
    # A copy of the sources: building in the checkout would share its build/ folder with other builds.
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, tree / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(tree)],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("bendi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {"bendi/demo/" + demo.demo_label(d) for d in demo.demo_documents()}
    assert shipped <= names and "bendi/demo/mining-safety-cn/SOURCE.txt" in names, sorted(shipped - names)[:5]


@pytest.fixture()
def small_demo(bendi_home: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Two real files of the demo library (the whole library takes minutes to embed on 2 cores)."""
    monkeypatch.setenv("BENDI_THREADS", "2")
    files = [LAW]
    monkeypatch.setattr(demo, "demo_documents", lambda: files)
    return files


def test_kb_demo_creates_the_base_then_says_it_exists(
    small_demo: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "demo"]) == 0
    out = capsys.readouterr().out
    assert "Created the demo knowledge base mining: 1 documents" in out
    services = build_services(load_settings())
    kb = services.knowledge.get("mining", KbScope.everything())
    hits = kb.search("矿山建设工程 安全设施 同时设计", top_k=1).hits
    assert "第七条" in hits[0].text and hits[0].file == demo.demo_label(LAW)
    assert main(["kb", "demo"]) == 0
    out = capsys.readouterr().out
    assert "exists already (1 documents, up to date)" in out
    assert kb.info().documents == 1


def test_kb_demo_finishes_an_interrupted_first_run(
    small_demo: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    services = build_services(load_settings())
    first = demo.create_demo(services.knowledge, files=[])  # as if stopped before the first file was done
    assert first.created and first.added == 0
    monkeypatch.setattr(demo, "demo_documents", lambda: [PERMIT])  # the smallest file: quick to embed
    assert main(["kb", "demo"]) == 0
    assert "added 1 missing file(s) (1 documents now)" in capsys.readouterr().out


def test_kb_demo_leaves_a_foreign_base_of_that_name_alone(
    small_demo: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "create", "mining", "--description", "our own"]) == 0
    assert main(["kb", "demo"]) == 1
    assert "is not the demo" in capsys.readouterr().out
    services = build_services(load_settings())
    assert services.knowledge.get("mining", KbScope.everything()).info().documents == 0
