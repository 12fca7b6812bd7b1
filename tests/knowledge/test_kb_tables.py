"""Tables in PDFs and DOCX become Markdown table chunks (header kept, repeated on split), cited by page."""

from __future__ import annotations

from pathlib import Path

from bendi.knowledge.chunking import ChunkingConfig, chunk_blocks
from bendi.knowledge.ingest import ingest_paths
from bendi.knowledge.library import KnowledgeBases
from bendi.knowledge.parsers import parse_document

# Limit values as a safety rule book prints them (the numbers are the point of the question).
GAS_LIMITS = [
    ["地点", "瓦斯浓度上限", "超限时的措施"],
    ["采区回风巷、采掘工作面回风巷风流中", "1.0%", "停止工作，撤出人员，采取措施，进行处理"],
    ["矿井总回风巷或一翼回风巷中", "0.75%", "立即查明原因，进行处理"],
    ["采掘工作面及其他作业地点风流中", "1.0%", "停止用电钻打眼"],
    ["电动机或其开关安设地点附近20m以内风流中", "1.5%", "停止工作，撤出人员，切断电源"],
]


def _gas_docx(path: Path, extra_rows: int = 0) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("井下瓦斯管理规定", level=1)
    document.add_paragraph("第一条 为加强瓦斯管理，防止瓦斯事故，制定本规定。")
    rows = GAS_LIMITS + [[f"第{i}号临时作业点", "1.0%", "停止作业"] for i in range(extra_rows)]
    table = document.add_table(rows=len(rows) + 1, cols=3)
    title = table.cell(0, 0).merge(table.cell(0, 2))  # a merged title row, as Word tables often have
    title.text = "表1 井下瓦斯浓度限值"
    for cells, row in zip(table.rows[1:], rows, strict=True):  # row by row: table.cell() is O(rows)
        for cell, value in zip(cells.cells, row, strict=True):
            cell.text = value
    document.add_paragraph("第二条 瓦斯检查员必须持证上岗。")
    document.save(str(path))
    return path


def test_docx_table_is_one_markdown_chunk_with_its_caption(tmp_path: Path) -> None:
    doc = parse_document(_gas_docx(tmp_path / "瓦斯.docx"))
    [table] = [b for b in doc.blocks if b.kind == "table"]
    lines = table.text.split("\n")
    assert lines[0] == "表1 井下瓦斯浓度限值"
    assert lines[1] == "| 地点 | 瓦斯浓度上限 | 超限时的措施 |" and lines[2] == "| --- | --- | --- |"
    assert "| 矿井总回风巷或一翼回风巷中 | 0.75% | 立即查明原因，进行处理 |" in lines
    chunks = chunk_blocks(doc.blocks)
    table_chunks = [c for c in chunks if "| --- |" in c.text]
    assert len(table_chunks) == 1 and table_chunks[0].text == table.text
    # Text before and after the table keeps its own articles.
    assert [c.article for c in chunks if c.article] == ["第一条", "第一条", "第二条"]


def test_big_table_is_split_by_rows_under_a_repeated_header(tmp_path: Path) -> None:
    doc = parse_document(_gas_docx(tmp_path / "big.docx", extra_rows=120))
    chunks = [c for c in chunk_blocks(doc.blocks, ChunkingConfig(max_tokens=200)) if "| --- |" in c.text]
    assert len(chunks) >= 4
    for chunk in chunks:
        head = chunk.text.split("\n")[:3]
        assert head == [
            "表1 井下瓦斯浓度限值",
            "| 地点 | 瓦斯浓度上限 | 超限时的措施 |",
            "| --- | --- | --- |",
        ]
    rows = [line for c in chunks for line in c.text.split("\n")[3:]]
    assert len(rows) == len(GAS_LIMITS) - 1 + 120 and len(set(rows)) == len(rows)  # each row exactly once


def _ruled_table_pdf(path: Path) -> Path:
    """A one-page PDF with a text layer: a heading, then a ruled 4×2 table drawn with lines."""
    from pypdf import PdfWriter
    from pypdf.generic import DictionaryObject, NameObject, StreamObject

    rows = [
        ("Location", "CH4 limit"),
        ("Return airway", "1.0%"),
        ("Main return", "0.75%"),
        ("Motor area", "1.5%"),
    ]
    ops = ["BT /F1 14 Tf 72 760 Td (Gas limits in coal mines: the concentration must not exceed) Tj ET"]
    top, left, mid, right, height = 720, 72, 272, 472, 24
    for i in range(len(rows) + 1):
        ops.append(f"{left} {top - i * height} m {right} {top - i * height} l S")
    for x in (left, mid, right):
        ops.append(f"{x} {top} m {x} {top - len(rows) * height} l S")
    for i, (a, b) in enumerate(rows):
        y = top - i * height - 16
        ops.append(f"BT /F1 11 Tf {left + 6} {y} Td ({a}) Tj ET")
        ops.append(f"BT /F1 11 Tf {mid + 6} {y} Td ({b}) Tj ET")
    ops.append(
        "BT /F1 11 Tf 72 580 Td (Measure the gas before every blasting and at every shift change.) Tj ET"
    )
    writer = PdfWriter()
    page = writer.add_blank_page(595, 842)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})  # fmt: skip
    fonts = DictionaryObject({NameObject("/F1"): writer._add_object(font)})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    content = StreamObject()
    content._data = "\n".join(ops).encode("ascii")
    page[NameObject("/Contents")] = writer._add_object(content)
    with open(path, "wb") as handle:
        writer.write(handle)
    return path


def test_pdf_ruled_table_becomes_a_markdown_block_in_reading_order(tmp_path: Path) -> None:
    doc = parse_document(_ruled_table_pdf(tmp_path / "limits.pdf"))
    kinds = [(b.kind, b.page) for b in doc.blocks]
    assert kinds == [("text", 1), ("table", 1), ("text", 1)], doc.blocks
    assert doc.blocks[1].text.split("\n") == [
        "| Location | CH4 limit |", "| --- | --- |", "| Return airway | 1.0% |", "| Main return | 0.75% |",
        "| Motor area | 1.5% |",
    ]  # fmt: skip
    assert doc.blocks[0].text.startswith("Gas limits in coal mines")
    assert doc.blocks[2].text.startswith("Measure the gas")


def test_question_about_a_limit_value_finds_the_table(
    knowledge: KnowledgeBases, mining_dir: Path, tmp_path: Path
) -> None:
    kb = knowledge.create("tables")
    distractor = mining_dir / "lawrefbook/社会法/矿山安全法(2009-08-27).md"
    outcomes = ingest_paths(kb, [_gas_docx(tmp_path / "瓦斯管理规定.docx"), distractor])
    assert [o.status for o in outcomes] == ["indexed", "indexed"]
    for question in ("矿井总回风巷瓦斯浓度上限是多少？", "电动机附近瓦斯浓度超过多少要切断电源"):
        hits = kb.search(question, top_k=5).hits
        tables = [h for h in hits if "| --- |" in h.text]
        assert tables and tables[0] is hits[0], [h.text[:40] for h in hits]
        assert "0.75%" in tables[0].text and "1.5%" in tables[0].text
