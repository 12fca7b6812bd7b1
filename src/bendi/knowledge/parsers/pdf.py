"""PDF parser, page by page: the text layer (pypdf) with its tables, or OCR of the rendered page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bendi.core.errors import DocumentError
from bendi.knowledge.parsers.images import MAX_PAGES
from bendi.knowledge.parsers.pdf_pages import TableFinder, image_problem, render_loader
from bendi.knowledge.records import Block, ParsedDocument

if TYPE_CHECKING:
    from bendi.knowledge.ocr_pool import OcrReader

# Below this many visible characters a page's "text" is a page number or stray glyphs, not a text layer.
MIN_CHARS_PER_PAGE = 20
# A text layer where fewer than this share of characters are CJK, Latin, digits, punctuation or
# spaces is garbage (a font without a Unicode map extracts as private-use or control characters).
MIN_READABLE_SHARE = 0.8
_CJK_GAP = re.compile(r"(?<=[\u4e00-\u9fff，。；：、）])\s+(?=[\u4e00-\u9fff（])")
_READABLE = re.compile(
    r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef\w\s!-~\u00a0-\u00ff\u2010-\u2027\u2030-\u206f]"
)


def _clean_page(text: str) -> list[str]:
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    # PDF extraction breaks Chinese lines mid-sentence; join lines, keep breaks after sentence ends.
    paragraphs: list[str] = []
    current = ""
    for line in lines:
        if not line:
            if current:
                paragraphs.append(current)
                current = ""
            continue
        current = (
            f"{current}{line}" if current and _is_cjk_join(current, line) else f"{current} {line}".strip()
        )
        if line.endswith(("。", "！", "？", "：", ".", "!", "?")):
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return [_CJK_GAP.sub("", p) for p in paragraphs if p.strip()]


def _is_cjk_join(left: str, right: str) -> bool:
    return (
        bool(left) and bool(right) and ("\u4e00" <= left[-1] <= "\u9fff" or "\u4e00" <= right[0] <= "\u9fff")
    )


def is_garbage(text: str) -> bool:
    """A text layer that extracts as control, private-use or replacement characters cannot be read."""
    visible = "".join(text.split())
    if not visible:
        return False
    readable = len(_READABLE.findall(visible)) - visible.count("\ufffd")
    return readable / len(visible) < MIN_READABLE_SHARE


def _open(path: Path) -> Any:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as exc:
                raise DocumentError(
                    f"{path.name} is password-protected; remove the password and add it again."
                ) from exc
        count = len(reader.pages)
    except PdfReadError as exc:
        raise DocumentError(
            f"{path.name} is not a readable PDF ({exc}); it may be damaged or truncated."
        ) from exc
    if count > MAX_PAGES:
        raise DocumentError(f"{path.name} has {count} pages; bendi reads at most {MAX_PAGES} per file.")
    return reader


def _title(reader: Any, path: Path) -> str:
    try:
        meta_title = reader.metadata.title if reader.metadata else None
        return str(meta_title).strip() if meta_title else path.stem
    except Exception:
        return path.stem


def parse_pdf(path: Path, ocr: OcrReader | None = None) -> ParsedDocument:
    """Text-layer pages become blocks directly; pages without one (or with a garbage one) go to OCR.

    Without an OCR reader, a PDF that is mostly images is reported as needs_ocr, as before OCR."""
    reader = _open(path)
    pages = list(reader.pages)
    per_page: dict[int, list[Block]] = {}
    scanned: list[int] = []
    failures: list[str] = []
    visible = 0
    tables = TableFinder(path, _clean_page)
    try:
        for number, page in enumerate(pages, start=1):
            visible += _read_page(page, number, tables, per_page, scanned, failures)
    finally:
        tables.close()
    if ocr is None:
        needs_ocr = len(pages) > 0 and visible < MIN_CHARS_PER_PAGE * len(pages)
        blocks = [b for n in sorted(per_page) for b in per_page[n]]
        skipped = (f"{len(failures)} page(s) were skipped: {'; '.join(failures[:5])}.",) if failures else ()
        return ParsedDocument(_title(reader, path), () if needs_ocr else tuple(blocks), len(pages),
                              needs_ocr=needs_ocr, warnings=skipped)  # fmt: skip
    jobs = []
    for number in scanned:
        problem = image_problem(pages[number - 1], number)
        if problem:
            failures.append(problem)
        else:
            jobs.append((number, render_loader(path, number)))
    texts = ocr.read_pages(jobs)
    for number, paragraphs in texts.items():
        per_page[number] = [Block(p, number) for p in paragraphs]
    ocr.failures.extend(failures)
    blocks = [b for n in sorted(per_page) for b in per_page[n]]
    if not blocks and ocr.failures:
        raise DocumentError(f"No page of {path.name} could be read: {'; '.join(ocr.failures[:3])}.")
    return ParsedDocument(_title(reader, path), tuple(blocks), len(pages), warnings=ocr.warnings())


def _read_page(page: Any, number: int, tables: TableFinder, per_page: dict[int, list[Block]],
               scanned: list[int], failures: list[str]) -> int:  # fmt: skip
    """The page's text blocks into per_page, or its number into scanned; returns visible characters."""
    from pypdf.errors import LimitReachedError

    try:
        text = page.extract_text() or ""
    except LimitReachedError:  # a decompression bomb: neither read its text nor render it
        failures.append(f"page {number}: its content decompresses beyond pypdf's safety limits")
        return 0
    except Exception:  # one broken page must not lose the rest of the document
        text = ""
    paragraphs = [] if is_garbage(text) else _clean_page(text)
    chars = sum(len(p.replace(" ", "")) for p in paragraphs)
    try:
        draws = chars < MIN_CHARS_PER_PAGE and _draws_something(page)
    except LimitReachedError:  # pypdf's text extraction stops quietly at the limit; this does not
        failures.append(f"page {number}: its content decompresses beyond pypdf's safety limits")
        return 0
    if draws:
        scanned.append(number)
    else:
        per_page[number] = tables.blocks(page, number, paragraphs)
    return chars


def _draws_something(page: Any) -> bool:
    """Whether a page draws images (XObjects, inline) or a lot of vector paths: something to OCR."""
    from pypdf.errors import LimitReachedError

    try:
        resources = page.get("/Resources")
        resources = resources.get_object() if resources is not None else None
        if resources is None:
            return False
        xobjects = resources.get("/XObject")
        if xobjects is not None and len(xobjects.get_object()) > 0:
            return True
        contents = page.get_contents()
        data = contents.get_data() if contents is not None else b""
        # an inline image, or glyphs drawn as outlines: both need eyes, not a text layer
        return b"BI" in data or len(data) > 20_000
    except LimitReachedError:
        raise
    except Exception:
        return True  # unsure: let OCR look at it rather than silently drop the page
