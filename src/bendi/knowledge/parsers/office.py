"""Office Open XML parsers: DOCX (headings, tables, page breaks in order) and XLSX (sheets as tables)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bendi.knowledge.parsers.images import check_pixels
from bendi.knowledge.parsers.tables import table_block
from bendi.knowledge.parsers.text import table_rows_to_blocks
from bendi.knowledge.records import Block, ParsedDocument

if TYPE_CHECKING:
    from bendi.knowledge.ocr_pool import OcrReader

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_BLIP = "{http://schemas.openxmlformats.org/drawingml/2006/main}blip"
_R_EMBED = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}embed"
# Pictures smaller than this are icons, logos and signatures: nothing to read, and slow to try.
MIN_PICTURE_SIDE = 120
MAX_PICTURES = 300  # per document; a scanned report pasted into Word is a few dozen
_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.I)


def _heading_level(style_name: str) -> int | None:
    name = style_name.strip()
    if name.lower() == "title":
        return 0
    match = _HEADING_STYLE.match(name)
    return int(match.group(1)) if match else None


def _page_breaks(element: object) -> int:
    """Explicit and last-rendered page breaks in a paragraph: DOCX has no pages, Word records these."""
    xml = element  # lxml element
    rendered = xml.findall(f".//{_W}lastRenderedPageBreak")  # type: ignore[attr-defined]
    explicit = [br for br in xml.iter(f"{_W}br") if br.get(f"{_W}type") == "page"]  # type: ignore[attr-defined]
    return max(len(rendered), len(explicit))


def _pictures(paragraph_xml: Any, document: Any) -> list[bytes]:
    blobs = []
    for blip in paragraph_xml.iter(_BLIP):
        rid = blip.get(_R_EMBED)
        part = document.part.related_parts.get(rid) if rid else None
        if part is not None and getattr(part, "blob", None):
            blobs.append(part.blob)
    return blobs


def _read_picture(blob: bytes, number: int, ocr: OcrReader) -> list[str]:
    """Paragraphs OCR reads in one embedded picture; a picture that fails is reported, not fatal."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(blob)) as image:
            if min(image.size) < MIN_PICTURE_SIDE:
                return []
            check_pixels(image.size[0], image.size[1], f"Picture {number}")
            image.load()
            return ocr.read_image(image.convert("RGB"))
    except Exception as exc:  # EMF/WMF drawings and damaged pictures: say so, keep the document
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        ocr.failures.append(f"picture {number}: {message}")
        return []


def parse_docx(path: Path, ocr: OcrReader | None = None) -> ParsedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(str(path))
    headings: list[tuple[int, str]] = []
    blocks: list[Block] = []
    page = 1
    saw_break = False
    title = (document.core_properties.title or "").strip()
    pictures = 0
    for child in document.element.body.iterchildren():
        if child.tag == f"{_W}p":
            paragraph = Paragraph(child, document)
            breaks = _page_breaks(child)
            if breaks:
                saw_break = True
                page += breaks
            text = paragraph.text.strip()
            if ocr is not None:  # text in pictures (scanned notices pasted into Word) reads in place
                for blob in _pictures(child, document)[: max(0, MAX_PICTURES - pictures)]:
                    pictures += 1
                    for found in _read_picture(blob, pictures, ocr):
                        blocks.append(Block(found, page, tuple(h for _, h in headings)))
            if not text:
                continue
            level = _heading_level(paragraph.style.name if paragraph.style is not None else "")
            if level is not None:
                title = title or text
                headings = [(lv, h) for lv, h in headings if lv < level] + [(level, text)]
                continue
            blocks.append(Block(text, page, tuple(h for _, h in headings)))
        elif child.tag == f"{_W}tbl":
            table = Table(child, document)
            rows = []
            for row in table.rows:
                # python-docx returns a merged cell once per grid column it spans: keep its text in
                # the first column only. Vertically merged cells do repeat down the rows, so a row
                # read alone still says which group it belongs to.
                cells, previous = [], None
                for cell in row.cells:
                    cells.append("" if cell._tc is previous else " ".join(cell.text.split()))
                    previous = cell._tc
                rows.append(cells)
            block = table_block(rows, page, tuple(h for _, h in headings))
            if block is not None:
                blocks.append(block)
    return ParsedDocument(
        title=title or path.stem,
        blocks=tuple(blocks) if saw_break else tuple(Block(b.text, None, b.heading, b.kind) for b in blocks),
        pages=page if saw_break else 0,
        warnings=ocr.warnings() if ocr is not None else (),
    )


def parse_xlsx(path: Path) -> ParsedDocument:
    import openpyxl

    workbook = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    blocks: list[Block] = []
    try:
        for sheet in workbook.worksheets:
            rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
            blocks.extend(table_rows_to_blocks(rows, (sheet.title,)))
    finally:
        workbook.close()
    return ParsedDocument(title=path.stem, blocks=tuple(blocks), pages=len(workbook.sheetnames))
