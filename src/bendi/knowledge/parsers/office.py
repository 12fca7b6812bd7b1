"""Office Open XML parsers: DOCX (headings, tables, page breaks in order) and XLSX (sheets as tables)."""

from __future__ import annotations

import re
from pathlib import Path

from bendi.knowledge.parsers.text import table_rows_to_blocks
from bendi.knowledge.records import Block, ParsedDocument

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
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


def parse_docx(path: Path) -> ParsedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(str(path))
    headings: list[tuple[int, str]] = []
    blocks: list[Block] = []
    page = 1
    saw_break = False
    title = (document.core_properties.title or "").strip()
    for child in document.element.body.iterchildren():
        if child.tag == f"{_W}p":
            paragraph = Paragraph(child, document)
            breaks = _page_breaks(child)
            if breaks:
                saw_break = True
                page += breaks
            text = paragraph.text.strip()
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
                cells: list[str] = []
                for cell in row.cells:  # merged cells repeat; keep each distinct text once per row
                    value = " ".join(cell.text.split())
                    if not cells or cells[-1] != value:
                        cells.append(value)
                rows.append(cells)
            heading = tuple(h for _, h in headings)
            blocks.extend(Block(b.text, page, heading) for b in table_rows_to_blocks(rows, heading))
    return ParsedDocument(
        title=title or path.stem,
        blocks=tuple(blocks) if saw_break else tuple(Block(b.text, None, b.heading) for b in blocks),
        pages=page if saw_break else 0,
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
