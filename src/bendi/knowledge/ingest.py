"""Ingestion: files -> parse -> chunk -> embed (cached) -> one transaction per document.

Crash safety comes from the order of work: everything slow (parsing, embedding) happens before
the single transaction that swaps a document's chunks, FTS rows and vectors; the embedding cache
commits separately, so a restart after kill -9 redoes only the unfinished document and re-embeds
nothing. An unchanged file (same SHA-256) is skipped; a changed one replaces its chunks."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bendi.core.errors import BendiError, DocumentError, UserInputError
from bendi.knowledge.chunking import chunk_blocks, context_text, embedding_text
from bendi.knowledge.index import SQLiteIndex
from bendi.knowledge.library import KnowledgeBase
from bendi.knowledge.ocr_setup import ocr_reader
from bendi.knowledge.parse_worker import ParsePool, default_pool
from bendi.knowledge.parsers import SUPPORTED_SUFFIXES
from bendi.knowledge.records import DocStatus, ParsedDocument


@dataclass(frozen=True)
class IngestProgress:
    files_done: int
    files_total: int
    pages_done: int
    chunks_done: int
    elapsed_s: float
    current_file: str = ""

    @property
    def chunks_per_s(self) -> float:
        return self.chunks_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def pages_per_s(self) -> float:
        return self.pages_done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class FileOutcome:
    file: str
    status: DocStatus
    doc_id: int | None = None
    chunks: int = 0
    pages: int = 0
    error: str | None = None


ProgressCallback = Callable[[IngestProgress], None]
PROGRESS_EVERY_S = 2.0
PagesCallback = Callable[[int, int], None]  # (pages OCR has done, pages it has to do) in this file


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def collect_files(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """(path on disk, file label as the user added it); folders recurse over supported suffixes."""
    found: list[tuple[Path, str]] = []
    for raw in paths:
        given = Path(raw)
        if given.is_dir():
            for root, dirs, names in os.walk(given):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    candidate = Path(root) / name
                    if not name.startswith(".") and candidate.suffix.lower() in SUPPORTED_SUFFIXES:
                        found.append((candidate, str(candidate)))
        elif given.is_file():
            found.append((given, str(raw)))
        else:
            raise UserInputError(f"{raw} does not exist (or is not a file or folder).")
    return found


def ingest_file(kb: KnowledgeBase, path: Path, file_label: str, *, source_key: str | None = None,
                tags: Sequence[str] = (), doc_id: int | None = None, on_pages: PagesCallback | None = None,
                lock: AbstractContextManager[object] | None = None, parsers: ParsePool | None = None,
                ) -> FileOutcome:  # fmt: skip
    """Index one file. Never raises for a bad document: the outcome (and the doc row) says why.

    While OCR reads a scan, the row's message says "OCR: page N of M" (the UI and the API show it
    under the file); pages OCR could not read are named in the message of the indexed row.
    `lock` (the base's write lock, when the caller does not hold it already) is taken after parsing:
    OCR of a 300-page scan then holds no lock while other uploads to the same base are indexed.
    Parsing (and OCR) runs in a worker process of `parsers` (default: the process-wide pool), so a
    hostile file that hangs, crashes or blows up its memory fails alone, with the reason."""
    key = source_key or "path:" + str(path.resolve())
    index = kb.index
    try:
        content_hash, size = sha256_file(path)
    except OSError as exc:
        raise UserInputError(f"Cannot read {file_label}: {exc.strerror or exc}.") from exc
    existing = index.document_by_key(key)
    # content_hash is written only together with the chunks it produced, so equal hash = up to date.
    if existing is not None and existing.content_hash == content_hash and existing.status != "failed":
        index.set_status(existing.id, "unchanged")
        return FileOutcome(file_label, "unchanged", existing.id, existing.chunks, existing.pages)
    if doc_id is None:
        doc_id = index.upsert_document(key, file_label, status="processing", tags=tags)
    else:
        index.set_status(doc_id, "processing")
    try:
        reader, why_not = ocr_reader(_ocr_progress(index, doc_id, on_pages))
        parsed = (parsers or default_pool()).parse(path, reader)
    except BendiError as exc:
        return _failed(index, doc_id, path, file_label, exc.message.replace(path.name, Path(file_label).name))
    except Exception as exc:  # a bug or resource error must not leave the row stuck in 'processing'
        return _failed(
            index, doc_id, path, file_label, f"Indexing {file_label} failed: {type(exc).__name__}: {exc}"
        )
    with lock if lock is not None else contextlib.nullcontext():
        return _store(kb, doc_id, path, file_label, parsed, content_hash, size, why_not)


def _failed(index: SQLiteIndex, doc_id: int, path: Path, file_label: str, message: str) -> FileOutcome:
    index.set_status(doc_id, "failed", message)
    return FileOutcome(file_label, "failed", doc_id, error=message)


def _store(kb: KnowledgeBase, doc_id: int, path: Path, file_label: str, parsed: ParsedDocument,
           content_hash: str, size: int, why_not: str) -> FileOutcome:  # fmt: skip
    """Chunk, embed and swap the document's chunks in one transaction (the part that needs the lock)."""
    index = kb.index
    try:
        index.document(doc_id)  # deleted while OCR read it (no lock is held then): write nothing
        if parsed.needs_ocr:
            message = (f"{file_label} has {parsed.pages} page(s) of images and no text layer: it needs OCR, "
                       f"{why_not} Run it through an OCR tool (e.g. ocrmypdf) and add the result.")  # fmt: skip
            index.replace_chunks(doc_id, title=parsed.title, content_hash=content_hash, bytes_=size,
                                 pages=parsed.pages, chunks=[], fts_texts=[], vectors=_empty(kb), status="needs_ocr")  # fmt: skip
            index.set_status(doc_id, "needs_ocr", message)
            return FileOutcome(file_label, "needs_ocr", doc_id, 0, parsed.pages, message)
        chunks = chunk_blocks(parsed.blocks)
        if not chunks:
            raise DocumentError(f"{file_label} contains no text to index.")
        texts = [context_text(parsed.title, c) for c in chunks]
        vectors = kb.embedder.embed([embedding_text(parsed.title, c) for c in chunks], kind="passage")
        index.replace_chunks(doc_id, title=parsed.title, content_hash=content_hash, bytes_=size,
                             pages=parsed.pages, chunks=chunks, fts_texts=texts, vectors=vectors)  # fmt: skip
        warning = " ".join(parsed.warnings).replace(path.name, Path(file_label).name) or None
        if warning:
            index.set_status(doc_id, "indexed", warning)
        return FileOutcome(file_label, "indexed", doc_id, len(chunks), parsed.pages, warning)
    except BendiError as exc:
        # Uploads are stored under content-derived names; speak of the file as the user named it.
        return _failed(index, doc_id, path, file_label, exc.message.replace(path.name, Path(file_label).name))
    except Exception as exc:  # a bug or resource error must not leave the row stuck in 'processing'
        return _failed(
            index, doc_id, path, file_label, f"Indexing {file_label} failed: {type(exc).__name__}: {exc}"
        )


def _ocr_progress(index: SQLiteIndex, doc_id: int, on_pages: PagesCallback | None) -> PagesCallback:
    """Reports OCR pages on the document row (what the UI polls), at most every few seconds."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done in (0, total) or now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            index.set_status(doc_id, "processing", f"OCR: page {done} of {total}")
        if on_pages:
            on_pages(done, total)

    return report


def _pages_progress(progress: ProgressCallback, at: IngestProgress, started: float) -> PagesCallback:
    """Progress of the whole run while OCR reads one file's pages (a 300-page scan shows movement)."""

    def report(done: int, total: int) -> None:
        progress(IngestProgress(at.files_done, at.files_total, at.pages_done + done, at.chunks_done,
                                time.monotonic() - started, at.current_file))  # fmt: skip

    return report


def _empty(kb: KnowledgeBase) -> np.ndarray:
    return np.zeros((0, 1), dtype=np.float32)


def ingest_paths(kb: KnowledgeBase, paths: Iterable[str | Path], *, tags: Sequence[str] = (),
                 progress: ProgressCallback | None = None, parsers: ParsePool | None = None,
                 ) -> list[FileOutcome]:  # fmt: skip
    files = collect_files(paths)
    started = time.monotonic()
    outcomes: list[FileOutcome] = []
    pages = chunks = 0
    with kb.write_lock:
        for number, (path, label) in enumerate(files):
            if progress:
                progress(IngestProgress(number, len(files), pages, chunks, time.monotonic() - started, label))
            on_pages = _pages_progress(progress, IngestProgress(number, len(files), pages, chunks, 0.0, label),
                                       started) if progress else None  # fmt: skip
            outcome = ingest_file(kb, path, label, tags=tags, on_pages=on_pages, parsers=parsers)
            outcomes.append(outcome)
            if outcome.status == "indexed":
                pages += max(outcome.pages, 1)
                chunks += outcome.chunks
    if progress:
        progress(IngestProgress(len(files), len(files), pages, chunks, time.monotonic() - started))
    return outcomes
