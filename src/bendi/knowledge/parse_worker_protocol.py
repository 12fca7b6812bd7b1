"""What travels between the server and a parse worker: JSON, never pickle.

The worker reads hostile files; if one ever took it over, a pickle from it would run code in the
server. JSON carries only data, and the server checks every field's type before trusting it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bendi.knowledge.records import Block, ParsedDocument

# A 2000-page document's text is tens of MB; more than this from a worker is a bug or an attack.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class BadMessageError(ValueError):
    """A worker sent something that is not a well-formed message."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 2048
    timeout_s: float = 300.0  # wall seconds without progress; also the CPU seconds per document
    recycle_after: int = 50  # documents per worker process


def dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(data: bytes) -> dict[str, Any]:
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadMessageError(f"not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise BadMessageError("not a JSON object")
    return message


def encode_document(doc: ParsedDocument) -> dict[str, Any]:
    return {
        "title": doc.title,
        "blocks": [[b.text, b.page, list(b.heading), b.kind] for b in doc.blocks],
        "pages": doc.pages,
        "needs_ocr": doc.needs_ocr,
        "converter": doc.converter,
        "warnings": list(doc.warnings),
    }


def _typed(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise BadMessageError(f"{what} has the wrong type")
    return value


def decode_document(raw: Any) -> ParsedDocument:
    """The parsed document from a worker's JSON, every field type-checked."""
    raw = _typed(raw, dict, "document")
    blocks = []
    for item in _typed(raw.get("blocks"), list, "blocks"):
        text, page, heading, kind = _typed(item, list, "block") + [None] * max(0, 4 - len(item))
        if page is not None:
            _typed(page, int, "page")
        blocks.append(Block(_typed(text, str, "text"), page,
                            tuple(_typed(h, str, "heading") for h in _typed(heading, list, "heading")),
                            _typed(kind, str, "kind")))  # fmt: skip
    return ParsedDocument(
        title=_typed(raw.get("title"), str, "title"),
        blocks=tuple(blocks),
        pages=_typed(raw.get("pages"), int, "pages"),
        needs_ocr=_typed(raw.get("needs_ocr"), bool, "needs_ocr"),
        converter=_typed(raw.get("converter"), str, "converter"),
        warnings=tuple(_typed(w, str, "warning") for w in _typed(raw.get("warnings"), list, "warnings")),
    )
