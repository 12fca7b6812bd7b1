"""Document parsers: sniff a file's real format (never trust the extension) and dispatch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bendi.core.errors import DocumentError
from bendi.knowledge.parsers.archive import check_office_archive
from bendi.knowledge.parsers.images import is_image
from bendi.knowledge.records import ParsedDocument

if TYPE_CHECKING:
    from bendi.knowledge.ocr_pool import OcrReader

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})
SUPPORTED_SUFFIXES = (
    frozenset(
        {".pdf", ".docx", ".doc", ".md", ".markdown", ".txt", ".text", ".html", ".htm", ".csv", ".xlsx"}
    )
    | IMAGE_SUFFIXES
)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def sniff_format(path: Path) -> str:
    """The format by content first (a .doc that is really OOXML is read as DOCX), then by suffix."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    if head.startswith(b"%PDF"):
        return "pdf"
    if is_image(head):
        return "image"
    if head.startswith(b"PK\x03\x04"):
        names = check_office_archive(path)  # bombs, lying sizes and DTDs are refused here
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        raise DocumentError(f"{path.name} is a ZIP archive, not a Word or Excel document; unpack it first.")
    if head.startswith(_OLE_MAGIC):
        return "doc"
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        return "markdown"
    if suffix in (".html", ".htm"):
        return "html"
    if suffix == ".csv":
        return "csv"
    if suffix in (".pdf", ".docx", ".xlsx", ".doc") or suffix in IMAGE_SUFFIXES:
        raise DocumentError(
            f"{path.name} has the extension {suffix} but its content is not a valid {suffix[1:].upper()} file; "
            "it may be damaged or mislabelled."
        )
    return "text"


def parse_document(path: Path, ocr: OcrReader | None = None) -> ParsedDocument:
    """Parse any supported file into blocks; raises DocumentError with a sentence a user can act on.

    With an OCR reader, scanned PDF pages, image files and pictures in DOCX are read by OCR;
    without one, scans come back as needs_ocr with no blocks."""
    kind = sniff_format(path)
    try:
        if kind == "pdf":
            from bendi.knowledge.parsers.pdf import parse_pdf

            return parse_pdf(path, ocr)
        if kind == "image":
            from bendi.knowledge.parsers.images import parse_image

            return parse_image(path, ocr)
        if kind == "docx":
            from bendi.knowledge.parsers.office import parse_docx

            return parse_docx(path, ocr)
        if kind == "xlsx":
            from bendi.knowledge.parsers.office import parse_xlsx

            return parse_xlsx(path)
        if kind == "doc":
            from bendi.knowledge.parsers.legacy import parse_legacy_doc

            return parse_legacy_doc(path)
        from bendi.knowledge.parsers import text

        if kind == "markdown":
            return text.parse_markdown(path)
        if kind == "html":
            return text.parse_html(path)
        if kind == "csv":
            return text.parse_csv(path)
        return text.parse_text(path)
    except DocumentError:
        raise
    except Exception as exc:  # a parser library choking on a broken file is a document problem
        raise DocumentError(
            f"Could not read {path.name} as {kind.upper()}: {type(exc).__name__}: {exc}. "
            "The file may be damaged; re-export it and add it again."
        ) from exc


def is_probably_scan(path: Path) -> bool:
    """Whether a file will go through OCR (an image, or a PDF whose first pages have no text layer):
    a cheap look that lets a server queue long OCR jobs apart from quick documents. It opens the
    file with pypdf, so it runs in a parse worker like any other parsing (checklist R18)."""
    from bendi.knowledge.parse_worker import default_pool

    return default_pool().looks_scanned(path)


def looks_scanned(path: Path, pages_checked: int = 3) -> bool:
    """is_probably_scan's look itself; called inside a parse worker."""
    try:
        kind = sniff_format(path)
        if kind == "image":
            return True
        if kind != "pdf":
            return False
        from pypdf import PdfReader

        from bendi.knowledge.parsers.pdf import MIN_CHARS_PER_PAGE

        pages = PdfReader(str(path)).pages
        return any(
            len("".join((pages[i].extract_text() or "").split())) < MIN_CHARS_PER_PAGE
            for i in range(min(pages_checked, len(pages)))
        )
    except Exception:  # a damaged file fails fast on the quick lane, with its own clear error
        return False
