"""OCR of scans made from real regulation text: accuracy, page numbers, articles, mixed PDFs, pictures."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from PIL import Image
from scans import ScannedPage, ScanStyle, cer, regulation_paragraphs, render_pages, save_pdf, save_tiff

from bendi.knowledge.chunking import ARTICLE, chunk_blocks
from bendi.knowledge.ocr import OcrEngine, lines_to_paragraphs
from bendi.knowledge.ocr_pool import OcrReader
from bendi.knowledge.parsers import parse_document, sniff_format

MINING_LAW = "lawrefbook/社会法/矿山安全法(2009-08-27).md"
EMERGENCY = "lawrefbook/行政法规/生产安全事故应急条例(2019-02-17).md"
MAX_CER_200DPI = 0.03  # issue 19's bar for the rendered-scan set at 200 dpi


@pytest.fixture(scope="module")
def law_pages(mining_dir: Path) -> list[ScannedPage]:
    """The first two printed pages of the Mine Safety Law, scanned at 200 dpi with noise, blur, skew."""
    return render_pages(regulation_paragraphs(mining_dir / MINING_LAW), ScanStyle(dpi=200), max_pages=2)


def _strip(page: ScannedPage, rows: int) -> Image.Image:
    """The top of a page (title and first lines): a small image that OCRs in a fraction of a page's time."""
    width, _ = page.image.size
    line_px = int(12 * 200 / 72 * 1.6)
    return page.image.crop((0, int(25 * 200 / 25.4) - 10, width, int(25 * 200 / 25.4) + rows * line_px))


def _articles(text: str) -> list[str]:
    return [m.group(1) for line in text.splitlines() if (m := ARTICLE.match(line))]


def test_scanned_pdf_is_read_page_by_page_into_articles(law_pages: list[ScannedPage], tmp_path: Path) -> None:
    pdf = save_pdf(law_pages, tmp_path / "矿山安全法-扫描件.pdf", dpi=200)
    seen: list[tuple[int, int]] = []
    reader = OcrReader(threads=2, on_page=lambda done, total: seen.append((done, total)))
    doc = parse_document(pdf, reader)
    assert doc.pages == 2 and not doc.needs_ocr and doc.warnings == ()
    assert seen == [(0, 2), (1, 2), (2, 2)]
    for number, page in enumerate(law_pages, start=1):
        text = "\n".join(b.text for b in doc.blocks if b.page == number)
        assert cer(text, page.text) <= MAX_CER_200DPI, (number, text)
    # Line structure survives: every article printed on a page is a chunk of its own, on that page.
    chunks = chunk_blocks(doc.blocks)
    for number, page in enumerate(law_pages, start=1):
        printed = [a for a in _articles(page.text) if a]
        found = {c.article for c in chunks if c.page == number}
        assert set(printed) <= found, (number, printed, found)
    # OCR may drop the space after 第二章; the chapter is still recognized as the heading.
    assert any(c.heading.replace(" ", "").endswith("第二章矿山建设的安全保障") for c in chunks)


def test_mixed_pdf_keeps_text_pages_and_ocrs_only_the_scanned_one(
    mining_dir: Path, shared_dir: Path, tmp_path: Path
) -> None:
    from pypdf import PdfReader, PdfWriter

    scanned = render_pages(regulation_paragraphs(mining_dir / EMERGENCY), ScanStyle(dpi=150), max_pages=1)
    scan_pdf = save_pdf(scanned, tmp_path / "scan.pdf", dpi=150)
    writer = PdfWriter()
    report = PdfReader(shared_dir / "rag-eval-data/import-fixtures-cn/coalqa/技术报告.pdf")
    writer.add_page(report.pages[0])
    writer.add_page(PdfReader(scan_pdf).pages[0])
    writer.add_page(report.pages[1])
    mixed = tmp_path / "mixed.pdf"
    with open(mixed, "wb") as handle:
        writer.write(handle)
    reader = OcrReader(threads=2)
    doc = parse_document(mixed, reader)
    assert reader.pages_read == 1 and doc.pages == 3
    assert {b.page for b in doc.blocks} == {1, 2, 3}
    page2 = "\n".join(b.text for b in doc.blocks if b.page == 2)
    assert cer(page2, scanned[0].text) <= 0.05
    assert "第一条" in page2 and "生产安全事故应急" in page2


def test_multipage_tiff_reads_every_frame_and_a_broken_frame_is_reported(
    law_pages: list[ScannedPage], tmp_path: Path
) -> None:
    top = ScannedPage(_strip(law_pages[0], 3), "")
    good = save_tiff([top, top], tmp_path / "two.tiff", dpi=200)
    assert sniff_format(good) == "image"
    reader = OcrReader(threads=2)
    doc = parse_document(good, reader)
    assert doc.pages == 2 and {b.page for b in doc.blocks} == {1, 2}
    assert "中华人民共和国矿山安全法" in "".join(b.text for b in doc.blocks if b.page == 2)

    # Frame 2's pixels cut off mid-file: frame 1 is still read; the document says which page failed.
    small = Image.new("L", (50, 50), 255)
    frames = [_strip(law_pages[0], 3), small, Image.new("L", (1200, 900), 0)]
    broken = tmp_path / "broken.tif"
    frames[0].save(broken, "TIFF", save_all=True, append_images=frames[1:])
    data = broken.read_bytes()
    offsets = _strip_offsets(data)
    broken.write_bytes(data[: offsets[-1] + 10])  # the third frame's pixel data is gone
    reader = OcrReader(threads=2)
    doc = parse_document(broken, reader)
    assert doc.pages == 3 and {b.page for b in doc.blocks} == {1}
    assert doc.warnings and "page 3" in doc.warnings[0] and "the rest is indexed" in doc.warnings[0]


def _strip_offsets(tiff: bytes) -> list[int]:
    """Where each frame's pixel data starts (tag 273, StripOffsets) in a little-endian TIFF."""
    found = []
    with Image.open(io.BytesIO(tiff)) as image:
        for index in range(image.n_frames):
            image.seek(index)
            found.append(int(image.tag_v2[273][0]))
    return found


def test_picture_in_docx_is_read_in_place(law_pages: list[ScannedPage], tmp_path: Path) -> None:
    import docx

    picture = io.BytesIO()
    _strip(law_pages[0], 3).save(picture, "PNG")
    picture.seek(0)
    document = docx.Document()
    document.add_paragraph("通知正文之前的一段说明文字。")
    document.add_picture(picture)
    document.add_paragraph("附件扫描件到此结束。")
    path = tmp_path / "通知.docx"
    document.save(str(path))
    texts = [b.text for b in parse_document(path, OcrReader(threads=2)).blocks]
    assert texts[0] == "通知正文之前的一段说明文字。" and texts[-1] == "附件扫描件到此结束。"
    assert any("中华人民共和国矿山安全法" in t for t in texts[1:-1])
    # Without OCR the picture is skipped and the text still indexes.
    assert [b.text for b in parse_document(path).blocks] == [texts[0], texts[-1]]


def test_ocr_uses_only_the_models_in_the_wheel_and_never_the_network(
    law_pages: list[ScannedPage], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("OCR tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    engine = OcrEngine(threads=1)  # a fresh engine: loading the models is where a download would be
    paragraphs = lines_to_paragraphs(engine.read(_strip(law_pages[0], 3)))
    assert paragraphs[0] == "中华人民共和国矿山安全法"
    assert any(p.startswith("第一条") for p in paragraphs)


def test_real_fax_scan_from_the_import_fixtures(shared_dir: Path, tmp_path: Path) -> None:
    """small_ocr.pdf is a real image-only scan (CCITT fax pages of a Chinese book); its first page."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.add_page(PdfReader(shared_dir / "rag-eval-data/import-fixtures-cn/mineru/small_ocr.pdf").pages[0])
    one_page = tmp_path / "fax.pdf"
    with open(one_page, "wb") as handle:
        writer.write(handle)
    assert parse_document(one_page).needs_ocr  # no text layer at all
    doc = parse_document(one_page, OcrReader(threads=2))
    text = "".join(b.text for b in doc.blocks)
    assert {b.page for b in doc.blocks} == {1} and len(text) > 400
    for phrase in ("使用价值", "交换价值", "商品体"):
        assert phrase in text
    # Wrapped lines are joined back into paragraphs: far fewer paragraphs than printed lines.
    assert len(doc.blocks) < 15
