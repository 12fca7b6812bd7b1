"""Ingestion: files -> parse -> chunk -> embed (cached) -> one transaction per document.

Crash safety comes from the order of work: everything slow (parsing, embedding) happens before
the single transaction that swaps a document's chunks, FTS rows and vectors; the embedding cache
commits separately, so a restart after kill -9 redoes only the unfinished document and re-embeds
nothing. An unchanged file (same SHA-256) is skipped; a changed one replaces its chunks."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bendi.core.errors import BendiError, DocumentError, UserInputError
from bendi.knowledge.chunking import chunk_blocks, context_text, embedding_text
from bendi.knowledge.library import KnowledgeBase
from bendi.knowledge.parsers import SUPPORTED_SUFFIXES, parse_document
from bendi.knowledge.records import DocStatus


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
                tags: Sequence[str] = (), doc_id: int | None = None) -> FileOutcome:  # fmt: skip
    """Index one file. Never raises for a bad document: the outcome (and the doc row) says why."""
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
        parsed = parse_document(path)
        if parsed.needs_ocr:
            message = (f"{file_label} has {parsed.pages} page(s) of images and no text layer: it needs OCR. "
                       "Run it through an OCR tool (e.g. ocrmypdf) and add the result.")  # fmt: skip
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
        return FileOutcome(file_label, "indexed", doc_id, len(chunks), parsed.pages)
    except BendiError as exc:
        # Uploads are stored under content-derived names; speak of the file as the user named it.
        message = exc.message.replace(path.name, Path(file_label).name)
        index.set_status(doc_id, "failed", message)
        return FileOutcome(file_label, "failed", doc_id, error=message)
    except Exception as exc:  # a bug or resource error must not leave the row stuck in 'processing'
        message = f"Indexing {file_label} failed: {type(exc).__name__}: {exc}"
        index.set_status(doc_id, "failed", message)
        return FileOutcome(file_label, "failed", doc_id, error=message)


def _empty(kb: KnowledgeBase) -> np.ndarray:
    return np.zeros((0, 1), dtype=np.float32)


def ingest_paths(kb: KnowledgeBase, paths: Iterable[str | Path], *, tags: Sequence[str] = (),
                 progress: ProgressCallback | None = None) -> list[FileOutcome]:  # fmt: skip
    files = collect_files(paths)
    started = time.monotonic()
    outcomes: list[FileOutcome] = []
    pages = chunks = 0
    with kb.write_lock:
        for number, (path, label) in enumerate(files):
            if progress:
                progress(IngestProgress(number, len(files), pages, chunks, time.monotonic() - started, label))
            outcome = ingest_file(kb, path, label, tags=tags)
            outcomes.append(outcome)
            if outcome.status == "indexed":
                pages += max(outcome.pages, 1)
                chunks += outcome.chunks
    if progress:
        progress(IngestProgress(len(files), len(files), pages, chunks, time.monotonic() - started))
    return outcomes
