"""Parsing real Chinese documents and chunking them by their structure (no embedding here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bendi.core.errors import DocumentError
from bendi.knowledge.chunking import ChunkingConfig, chunk_blocks, estimate_tokens
from bendi.knowledge.parsers import parse_document, sniff_format
from bendi.knowledge.parsers.legacy import available_doc_converter
from bendi.knowledge.records import Block


@pytest.fixture(scope="module")
def fixtures(shared_dir: Path) -> Path:
    return shared_dir / "rag-eval-data" / "import-fixtures-cn"


def test_pdf_text_layer_keeps_page_numbers(fixtures: Path) -> None:
    doc = parse_document(fixtures / "coalqa" / "技术报告.pdf")
    assert doc.pages == 15 and not doc.needs_ocr
    pages = {b.page for b in doc.blocks}
    assert pages <= set(range(1, 16)) and len(pages) >= 10
    # The RAG section of the report is on a later page than the table of contents.
    rag_pages = {b.page for b in doc.blocks if "RAG" in b.text}
    assert rag_pages and max(rag_pages) > 1
    chunks = chunk_blocks(doc.blocks)
    assert all(c.page is not None for c in chunks)


def test_scanned_pdf_is_reported_as_needing_ocr(fixtures: Path) -> None:
    doc = parse_document(fixtures / "mineru" / "small_ocr.pdf")
    assert doc.needs_ocr and doc.pages == 8 and doc.blocks == ()


def test_docx_headings_and_tables(fixtures: Path) -> None:
    doc = parse_document(fixtures / "coalqa" / "煤矿安全技术措施汇编.docx")
    headings = {b.heading for b in doc.blocks if b.heading}
    assert any("防治瓦斯与煤层自燃发火技术措施" in h[0] for h in headings)
    tables = parse_document(fixtures / "mineru" / "docx_01.docx")
    rows = [b.text for b in tables.blocks if " | " in b.text or ": " in b.text]
    assert len(rows) >= 8  # the file has 8 tables, each rendered row by row


def test_doc_extension_with_docx_content_is_sniffed(fixtures: Path) -> None:
    path = fixtures / "coalqa" / "煤矿安全生产管理措施和方法.doc"
    assert sniff_format(path) == "docx"
    assert "安全" in "".join(b.text for b in parse_document(path).blocks)


def test_legacy_doc_matches_its_docx_twin(fixtures: Path) -> None:
    folder = fixtures / "langchain-chatchat"
    doc_path = folder / "核电厂定期安全审查指南 第1部分：通用要求（征求意见稿）.doc"
    assert sniff_format(doc_path) == "doc"
    if available_doc_converter() is None:
        with pytest.raises(DocumentError, match="no converter is installed"):
            parse_document(doc_path)
        pytest.skip("no .doc converter installed (apt-get install antiword); the clear error was checked")
    legacy = "".join(b.text for b in parse_document(doc_path).blocks)
    modern = "".join(b.text for b in parse_document(doc_path.with_suffix(".docx")).blocks)
    assert "定期安全评价" in legacy and "定期安全评价" in modern
    assert 0.8 < len(legacy) / len(modern) < 1.3


def test_legacy_doc_without_converter_says_what_to_install(
    fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    path = fixtures / "langchain-chatchat" / "核电厂定期安全审查指南 第1部分：通用要求（征求意见稿）.doc"
    with pytest.raises(DocumentError, match="antiword"):
        parse_document(path)


ARTICLES = "第一章 总则\n第一条 为了保障煤矿安全生产，制定本条例。\\n\n第二条 煤矿企业应当遵守本条例。\n"


@pytest.mark.parametrize("encoding", ["utf-8", "gbk", "gb18030", "utf-16", "utf-16-le", "utf-8-sig"])
def test_text_encodings_are_detected(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / f"rules-{encoding}.txt"
    path.write_bytes(ARTICLES.encode(encoding))
    doc = parse_document(path)
    assert [b.text for b in doc.blocks] == [
        "第一章 总则",
        "第一条 为了保障煤矿安全生产，制定本条例。",
        "第二条 煤矿企业应当遵守本条例。",
    ]
    chunks = chunk_blocks(doc.blocks)
    assert [c.article for c in chunks] == ["第一条", "第二条"]
    assert chunks[0].heading == "第一章 总则"


def test_markdown_html_csv_xlsx(tmp_path: Path) -> None:
    md = tmp_path / "a.md"
    md.write_text(
        "# 规程\n\n<!-- INFO END -->\n\n## 第二章 通风\n\n第十条 矿井必须有通风系统。\n", encoding="utf-8"
    )
    chunk = chunk_blocks(parse_document(md).blocks)[0]
    assert chunk.article == "第十条" and chunk.heading == "规程 > 第二章 通风"

    html = tmp_path / "b.html"
    html.write_text("<html><head><title>T</title><script>evil()</script></head><body><h1>瓦斯</h1>"
                    "<p>瓦斯浓度超过1%停止作业。</p><table><tr><th>项目</th><th>限值</th></tr>"
                    "<tr><td>甲烷</td><td>1%</td></tr></table></body></html>", encoding="utf-8")  # fmt: skip
    blocks = parse_document(html).blocks
    assert [b.text for b in blocks] == ["瓦斯浓度超过1%停止作业。", "项目 | 限值", "项目: 甲烷; 限值: 1%"]
    assert all(b.heading == ("瓦斯",) for b in blocks)

    csv_path = tmp_path / "c.csv"
    csv_path.write_bytes("设备,数量\n风机,2\n".encode("gbk"))
    assert parse_document(csv_path).blocks[-1].text == "设备: 风机; 数量: 2"

    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "台账"
    book.active.append(["传感器", "位置"])
    book.active.append(["CH4", "工作面"])
    book.save(tmp_path / "d.xlsx")
    blocks = parse_document(tmp_path / "d.xlsx").blocks
    assert blocks[-1].text == "传感器: CH4; 位置: 工作面" and blocks[-1].heading == ("台账",)


def test_broken_files_raise_clear_errors(tmp_path: Path) -> None:
    pdf = tmp_path / "broken.pdf"
    pdf.write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 50)
    with pytest.raises(DocumentError, match="broken.pdf"):
        parse_document(pdf)
    docx = tmp_path / "fake.docx"
    docx.write_text("not a zip", encoding="utf-8")
    with pytest.raises(DocumentError, match="not a valid DOCX"):
        parse_document(docx)


def test_long_article_is_split_on_sentences_with_overlap_and_offsets() -> None:
    sentence = "井下作业人员必须佩戴自救器并熟悉避灾路线。"
    article = "第九条 " + sentence * 60
    blocks = [Block("第三章 作业"), Block("第八条 短条文。"), Block(article), Block("第十条 最后一条。")]
    chunks = chunk_blocks(blocks, ChunkingConfig(max_tokens=200, overlap_tokens=40))
    nine = [c for c in chunks if c.article == "第九条"]
    assert len(nine) >= 5 and all(estimate_tokens(c.text) <= 200 for c in nine)
    assert nine[1].text.startswith(sentence)  # windows start on a sentence boundary
    assert nine[0].text[-len(sentence) :] in nine[1].text  # and overlap the previous window
    full = "\n".join(b.text for b in blocks)
    for c in chunks:
        assert full[c.start_char : c.end_char] == c.text
    assert [c.article for c in chunks if c.article != "第九条"] == ["第八条", "第十条"]
    assert all(c.heading == "第三章 作业" for c in chunks)


def test_regulation_keeps_articles_whole(shared_dir: Path) -> None:
    path = shared_dir / "rag-eval-data/mining-safety-cn/lawrefbook/社会法/矿山安全法(2009-08-27).md"
    chunks = chunk_blocks(parse_document(path).blocks)
    articles = [c.article for c in chunks if c.article]
    assert articles[0] == "第一条" and articles[-1] == "第五十条" and len(set(articles)) == 50
    seventh = next(c for c in chunks if c.article == "第七条")
    assert "同时设计、同时施工、同时投入生产和使用" in seventh.text
    assert seventh.heading.endswith("第二章 矿山建设的安全保障")
