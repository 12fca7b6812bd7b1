"""The values that flow through the knowledge pipeline: parsed blocks, chunks, documents, hits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DocStatus = Literal["queued", "processing", "indexed", "failed", "needs_ocr", "unchanged"]


@dataclass(frozen=True)
class Block:
    """A run of text from a parser with where it came from (page is 1-based; None when the
    format has no pages) and the headings above it, outermost first."""

    text: str
    page: int | None = None
    heading: tuple[str, ...] = ()
    # "table": a Markdown table (header row, separator, rows) that chunking keeps whole or splits
    # by rows, repeating the header.
    kind: str = "text"


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    blocks: tuple[Block, ...]
    pages: int = 0
    needs_ocr: bool = False
    converter: str = ""  # the external program that read a legacy format, if any
    warnings: tuple[str, ...] = ()  # e.g. pages OCR could not read; the rest is indexed


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage with everything a citation needs."""

    ordinal: int
    text: str
    page: int | None
    heading: str
    article: str | None
    start_char: int
    end_char: int


@dataclass(frozen=True)
class DocumentRecord:
    id: int
    file: str
    title: str
    bytes: int
    pages: int
    chunks: int
    status: DocStatus
    error: str | None
    added_at: float
    updated_at: float
    content_hash: str = ""
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "file": self.file,
            "title": self.title,
            "bytes": self.bytes,
            "pages": self.pages,
            "chunks": self.chunks,
            "status": self.status,
            "error": self.error,
            "added_at": self.added_at,
            "updated_at": self.updated_at,
            "tags": list(self.tags),
        }


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    doc_id: int
    file: str
    page: int | None
    article: str | None
    heading: str
    score: float
    text: str
    # Per-retriever ranks (1-based) behind the fused score, for explanations and benchmarks.
    ranks: dict[str, int] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, object]:
        return {
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "file": self.file,
            "page": self.page,
            "article": self.article,
            "heading": self.heading,
            "score": round(self.score, 6),
            "text": self.text,
        }
