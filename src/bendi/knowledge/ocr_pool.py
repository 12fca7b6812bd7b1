"""The bounded OCR worker: one shared engine, a cap on pages recognized at once, progress per page."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bendi.core.errors import BendiError
from bendi.knowledge.ocr import OcrEngine, OcrUnavailableError, lines_to_paragraphs

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger("bendi.knowledge.ocr")

PageLoader = Callable[[], "Image"]
PageCallback = Callable[[int, int], None]  # (pages done, pages to OCR) for this document

# One process-wide engine and one page at a time: OCR is CPU-bound and onnxruntime already spreads
# a page over `threads` cores, so a 300-page scan holds those cores, not the whole machine, and
# the server's event loop and searches (which release no cores to OCR) keep answering.
_ENGINES: dict[int, OcrEngine] = {}
_ENGINES_LOCK = threading.Lock()
_PAGE_SLOTS = threading.BoundedSemaphore(1)


@contextlib.contextmanager
def page_slot(lock_file: Path | None) -> Iterator[None]:
    """One page at a time in this process, and across parse worker processes when they share a
    lock file: flock is released by the kernel when a worker is killed mid-page, a semaphore is not."""
    with _PAGE_SLOTS:
        if lock_file is None:
            yield
            return
        with open(lock_file, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def shared_engine(threads: int) -> OcrEngine:
    with _ENGINES_LOCK:
        engine = _ENGINES.get(threads)
        if engine is None:
            engine = _ENGINES[threads] = OcrEngine(threads)
        return engine


@dataclass
class OcrReader:
    """What a parser is given to read page images; collects failures so one bad page loses no others."""

    threads: int = 2
    on_page: PageCallback | None = None
    failures: list[str] = field(default_factory=list)
    pages_read: int = 0
    page_lock: Path | None = None  # shared by the parse workers (parse_worker.py)

    def read_pages(self, pages: Sequence[tuple[int, PageLoader]]) -> dict[int, list[str]]:
        """Paragraphs per page number; a page that cannot be loaded or read is skipped and reported."""
        engine = shared_engine(self.threads)
        out: dict[int, list[str]] = {}
        for done, (number, load) in enumerate(pages):
            if self.on_page:
                self.on_page(done, len(pages))
            try:
                image = load()
                with page_slot(self.page_lock):
                    lines = engine.read(image)
                out[number] = lines_to_paragraphs(lines)
                self.pages_read += 1
            except OcrUnavailableError:
                raise
            except MemoryError:
                self.failures.append(f"page {number}: too large to read in memory")
            except BendiError as exc:
                self.failures.append(f"page {number}: {exc.message}")
            except Exception as exc:  # a damaged image on one page must not lose the others
                log.warning("OCR of page %s failed: %s", number, exc, exc_info=True)
                self.failures.append(f"page {number}: {type(exc).__name__}: {exc}")
        if self.on_page and pages:
            self.on_page(len(pages), len(pages))
        return out

    def read_image(self, image: Image) -> list[str]:
        """Paragraphs of one embedded picture (e.g. in a DOCX); no page bookkeeping."""
        engine = shared_engine(self.threads)
        with page_slot(self.page_lock):
            return lines_to_paragraphs(engine.read(image))

    def warnings(self) -> tuple[str, ...]:
        if not self.failures:
            return ()
        shown = "; ".join(self.failures[:5])
        more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        return (f"OCR could not read {len(self.failures)} page(s), the rest is indexed: {shown}{more}.",)
