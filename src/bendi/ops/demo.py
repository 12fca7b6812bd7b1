"""The demo knowledge base shipped with bendi: the mining-safety regulations, ingested on request."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bendi.access.scope import KbScope
from bendi.core.errors import NotFoundError
from bendi.knowledge.ingest import FileOutcome, IngestProgress, ProgressCallback, ingest_file
from bendi.knowledge.library import KnowledgeBase, KnowledgeBases
from bendi.knowledge.parsers import SUPPORTED_SUFFIXES

# Package data (pyproject): inside the installed package, so it is there wherever bendi is installed.
DEMO_ROOT = Path(__file__).resolve().parents[1] / "demo"
DEMO_LIBRARY = DEMO_ROOT / "mining-safety-cn"
DEMO_BASE_NAME = "mining"
DEMO_DESCRIPTION = "煤矿安全法规 (demo: Chinese mining and work-safety regulations, shipped with bendi)"
# Says where each file comes from; provenance, not a document to answer from.
SOURCE_FILE = "SOURCE.txt"


@dataclass(frozen=True)
class DemoResult:
    kb: KnowledgeBase
    created: bool  # False: the base existed already
    is_demo: bool  # False: a base of that name exists that is not the demo, and was left alone
    outcomes: tuple[FileOutcome, ...]

    @property
    def added(self) -> int:
        return sum(o.status == "indexed" for o in self.outcomes)


def demo_documents() -> list[Path]:
    """The regulation files of the demo library, in a stable order (SOURCE.txt left out)."""
    if not DEMO_LIBRARY.is_dir():
        raise NotFoundError(
            f"The demo library is missing from this installation ({DEMO_LIBRARY}). Reinstall bendi."
        )
    return sorted(
        path
        for path in DEMO_LIBRARY.rglob("*")
        if path.is_file() and path.name != SOURCE_FILE and path.suffix.lower() in SUPPORTED_SUFFIXES
    )


def demo_label(path: Path) -> str:
    """How a citation names the file: relative to the demo folder, not a site-packages path."""
    return path.relative_to(DEMO_ROOT).as_posix()


def existing_demo(knowledge: KnowledgeBases, name: str = DEMO_BASE_NAME) -> KnowledgeBase | None:
    try:
        return knowledge.get(name, KbScope.everything())
    except NotFoundError:
        return None


def create_demo(
    knowledge: KnowledgeBases,
    *,
    name: str = DEMO_BASE_NAME,
    files: Sequence[Path] | None = None,
    progress: ProgressCallback | None = None,
) -> DemoResult:
    """Create the demo base from the demo library. Safe to repeat: an existing demo base only gets
    the files an interrupted first run did not finish (unchanged ones are skipped by their hash);
    a base of that name that is not the demo is left untouched."""
    kb = existing_demo(knowledge, name)
    created = kb is None
    if kb is None:
        kb = knowledge.create(name, DEMO_DESCRIPTION)
    elif kb.info().description != DEMO_DESCRIPTION:
        return DemoResult(kb, created=False, is_demo=False, outcomes=())
    documents = list(files) if files is not None else demo_documents()
    started = time.monotonic()
    outcomes: list[FileOutcome] = []
    pages = chunks = 0
    with kb.write_lock:
        for number, path in enumerate(documents):
            label = demo_label(path)
            if progress:
                progress(
                    IngestProgress(number, len(documents), pages, chunks, time.monotonic() - started, label)
                )
            outcome = ingest_file(kb, path, label, tags=("demo",))
            outcomes.append(outcome)
            if outcome.status == "indexed":
                pages += max(outcome.pages, 1)
                chunks += outcome.chunks
    if progress:
        progress(IngestProgress(len(documents), len(documents), pages, chunks, time.monotonic() - started))
    return DemoResult(kb, created=created, is_demo=True, outcomes=tuple(outcomes))
