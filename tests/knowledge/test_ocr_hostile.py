"""Hostile and broken scans: huge images, PDF bombs, corrupt TIFFs fail clearly and lose nothing else."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from bendi.core.errors import DocumentError
from bendi.knowledge.ingest import IngestProgress, ingest_paths
from bendi.knowledge.library import KnowledgeBases
from bendi.knowledge.ocr_pool import OcrReader
from bendi.knowledge.parsers import parse_document
from bendi.knowledge.parsers.images import MAX_PAGES

TEXT_PDF = "rag-eval-data/import-fixtures-cn/coalqa/技术报告.pdf"


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header that claims width×height pixels, with almost no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _hostile_pdf(shared_dir: Path, path: Path) -> Path:
    """Page 1: a real text page. Page 2: a content stream that inflates to 100 MB of spaces (a bomb).
    Page 3: an image that declares 60000×60000 pixels (3.6 gigapixels) but holds a few bytes."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import DictionaryObject, NameObject, NumberObject, StreamObject

    writer = PdfWriter()
    writer.add_page(PdfReader(shared_dir / TEXT_PDF).pages[0])
    bomb_page = writer.add_blank_page(595, 842)
    bomb = StreamObject()
    bomb._data = zlib.compress(b" " * 100_000_000, 9)
    bomb[NameObject("/Filter")] = NameObject("/FlateDecode")
    bomb_page[NameObject("/Contents")] = writer._add_object(bomb)
    image_page = writer.add_blank_page(595, 842)
    image = StreamObject()
    image._data = zlib.compress(b"\0" * 1000)
    image.update({NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Image"),
                  NameObject("/Width"): NumberObject(60000), NameObject("/Height"): NumberObject(60000),
                  NameObject("/ColorSpace"): NameObject("/DeviceGray"),
                  NameObject("/BitsPerComponent"): NumberObject(8),
                  NameObject("/Filter"): NameObject("/FlateDecode")})  # fmt: skip
    xobjects = DictionaryObject({NameObject("/Im0"): writer._add_object(image)})
    image_page[NameObject("/Resources")] = DictionaryObject({NameObject("/XObject"): xobjects})
    draw = StreamObject()
    draw._data = b"q 595 0 0 842 0 0 cm /Im0 Do Q"
    image_page[NameObject("/Contents")] = writer._add_object(draw)
    with open(path, "wb") as handle:
        writer.write(handle)
    return path


def test_pdf_bomb_pages_are_refused_and_the_rest_is_read(shared_dir: Path, tmp_path: Path) -> None:
    pdf = _hostile_pdf(shared_dir, tmp_path / "bomb.pdf")
    started = time.monotonic()
    reader = OcrReader(threads=1)
    doc = parse_document(pdf, reader)
    assert time.monotonic() - started < 30
    assert reader.pages_read == 0  # neither hostile page was decoded, let alone rendered
    assert doc.pages == 3 and {b.page for b in doc.blocks} == {1}
    warning = doc.warnings[0]
    assert "page 2" in warning and "safety limits" in warning
    assert "page 3" in warning and "60000×60000" in warning


def test_huge_and_corrupt_images_fail_with_a_sentence_and_lose_nothing(
    knowledge: KnowledgeBases, shared_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "cabinet"
    folder.mkdir()
    (folder / "huge.png").write_bytes(_png_claiming(100_000, 100_000))
    (folder / "corrupt.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    (folder / "fake.jpg").write_text("this is not a picture", encoding="utf-8")
    (folder / "notes.txt").write_text("第一条 井下作业人员必须佩戴自救器。\n", encoding="utf-8")
    _hostile_pdf(shared_dir, folder / "bomb.pdf")
    kb = knowledge.create("hostile-scans")
    seen: list[IngestProgress] = []
    outcomes = {Path(o.file).name: o for o in ingest_paths(kb, [folder], progress=seen.append)}
    assert outcomes["huge.png"].status == "failed"
    assert "huge.png claims more than 80 megapixels" in (outcomes["huge.png"].error or "")
    assert outcomes["corrupt.tif"].status == "failed"
    assert "corrupt.tif is not a readable image" in (outcomes["corrupt.tif"].error or "")
    assert outcomes["fake.jpg"].status == "failed" and "not a valid JPG" in (outcomes["fake.jpg"].error or "")
    assert outcomes["notes.txt"].status == "indexed"
    # The bomb PDF indexes its good page; the row says which pages were refused.
    bomb = outcomes["bomb.pdf"]
    assert bomb.status == "indexed" and bomb.chunks > 0 and "page 3" in (bomb.error or "")
    assert kb.find_document("bomb.pdf").error == bomb.error
    hits = kb.search("自救器", top_k=3).hits
    assert hits and hits[0].file.endswith("notes.txt")
    assert seen[-1].files_done == seen[-1].files_total == 5


def test_page_count_limit(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(MAX_PAGES + 1):
        writer.add_blank_page(100, 100)
    path = tmp_path / "long.pdf"
    with open(path, "wb") as handle:
        writer.write(handle)
    with pytest.raises(DocumentError, match=f"at most {MAX_PAGES}"):
        parse_document(path, OcrReader(threads=1))


def test_ocr_turned_off_reports_needs_ocr(
    knowledge: KnowledgeBases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENDI_KB_OCR", "0")
    image = tmp_path / "photo.jpg"
    Image.new("RGB", (400, 300), "white").save(image, "JPEG")
    kb = knowledge.create("no-ocr")
    [outcome] = ingest_paths(kb, [image])
    assert outcome.status == "needs_ocr" and "OCR is turned off" in (outcome.error or "")
