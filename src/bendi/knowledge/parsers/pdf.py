"""PDF parser: the text layer page by page (pypdf); image-only PDFs are reported as needing OCR."""

from __future__ import annotations

import re
from pathlib import Path

from bendi.core.errors import DocumentError
from bendi.knowledge.records import Block, ParsedDocument

# Below this many visible characters per page on average, the "text" is page numbers and stray
# glyphs, not a text layer.
MIN_CHARS_PER_PAGE = 20
_CJK_GAP = re.compile(r"(?<=[\u4e00-\u9fff，。；：、）])\s+(?=[\u4e00-\u9fff（])")


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


def parse_pdf(path: Path) -> ParsedDocument:
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
        pages = list(reader.pages)
    except PdfReadError as exc:
        raise DocumentError(
            f"{path.name} is not a readable PDF ({exc}); it may be damaged or truncated."
        ) from exc
    blocks: list[Block] = []
    visible = 0
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception:  # one broken page must not lose the rest of the document
            text = ""
        for paragraph in _clean_page(text):
            visible += len(paragraph.replace(" ", ""))
            blocks.append(Block(paragraph, number))
    title = ""
    try:
        meta_title = reader.metadata.title if reader.metadata else None
        title = str(meta_title).strip() if meta_title else ""
    except Exception:
        title = ""
    needs_ocr = len(pages) > 0 and visible < MIN_CHARS_PER_PAGE * len(pages)
    return ParsedDocument(
        title=title or path.stem,
        blocks=() if needs_ocr else tuple(blocks),
        pages=len(pages),
        needs_ocr=needs_ocr,
    )
