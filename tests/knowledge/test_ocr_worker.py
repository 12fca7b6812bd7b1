"""The server's ingestion worker: a long scan OCRs in its own lane while other uploads are indexed."""

from __future__ import annotations

import time
from pathlib import Path

from scans import ScanStyle, regulation_paragraphs, render_pages, save_tiff

from bendi.gateway.knowledge_api.worker import IngestWorker
from bendi.knowledge.library import KnowledgeBase, KnowledgeBases
from bendi.knowledge.parsers import is_probably_scan

REGULATION = "lawrefbook/行政法规/安全生产许可证条例(2014-07-29).md"


def _upload(kb: KnowledgeBase, name: str, path: Path) -> int:
    return kb.index.upsert_document("upload:" + name, name, status="queued", stored_path=str(path))


def test_scan_is_read_in_its_own_lane_and_does_not_hold_up_other_uploads(
    knowledge: KnowledgeBases, mining_dir: Path, tmp_path: Path, shared_dir: Path
) -> None:
    pages = render_pages(regulation_paragraphs(mining_dir / REGULATION), ScanStyle(dpi=150), max_pages=2)
    scan = save_tiff(pages, tmp_path / "scan.tiff", dpi=150)
    note = tmp_path / "note.txt"
    note.write_text("第一条 入井人员必须随身携带自救器和标识卡。\n", encoding="utf-8")
    assert is_probably_scan(scan) and not is_probably_scan(note)
    assert not is_probably_scan(shared_dir / "rag-eval-data/import-fixtures-cn/coalqa/技术报告.pdf")
    assert is_probably_scan(shared_dir / "rag-eval-data/import-fixtures-cn/mineru/small_ocr.pdf")

    kb = knowledge.create("lanes")
    kb.embedder.embed(["预热"], kind="query")  # load the embedder now, not inside the timing below
    worker = IngestWorker(knowledge)
    try:
        scan_id = _upload(kb, "scan.tiff", scan)
        worker.submit("lanes", scan_id)
        deadline = time.monotonic() + 60
        while kb.index.document(scan_id).status != "processing" and time.monotonic() < deadline:
            time.sleep(0.05)
        note_id = _upload(kb, "note.txt", note)  # uploaded after the scan started OCR
        worker.submit("lanes", note_id)
        while kb.index.document(note_id).status != "indexed" and time.monotonic() < deadline:
            time.sleep(0.05)
        scan_row = kb.index.document(scan_id)
        # The note is searchable while the scan is still being read, and the scan row shows pages.
        assert kb.index.document(note_id).status == "indexed"
        assert scan_row.status == "processing" and (scan_row.error or "").startswith("OCR: page ")
        assert kb.search("自救器", top_k=1).hits[0].file == "note.txt"
        deadline = time.monotonic() + 200
        while not worker.idle() and time.monotonic() < deadline:
            time.sleep(0.2)
        done = kb.index.document(scan_id)
        assert done.status == "indexed" and done.pages == 2 and done.error is None
        hits = kb.search("安全生产许可证", top_k=5).hits
        assert any(h.file == "scan.tiff" and h.page in (1, 2) for h in hits)
    finally:
        worker.close()
