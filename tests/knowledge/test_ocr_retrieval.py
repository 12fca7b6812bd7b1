"""A scanned copy of a regulation answers the same article questions as its text copy, citing pages."""

from __future__ import annotations

from pathlib import Path

from scans import ScanStyle, printed_paragraphs, regulation_paragraphs, render_pages, save_pdf

from bendi.knowledge.chunking import ARTICLE
from bendi.knowledge.ingest import IngestProgress, ingest_paths
from bendi.knowledge.library import KnowledgeBase, KnowledgeBases

REGULATION = "lawrefbook/社会法/矿山安全法(2009-08-27).md"


def article_questions(paragraphs: list[str]) -> list[tuple[str, str]]:
    """(question, article) pairs: a clause from the middle of each article, without its number,
    the way someone quotes a rule they half remember."""
    out = []
    for paragraph in paragraphs:
        match = ARTICLE.match(paragraph)
        if match:
            body = paragraph[match.end() :].strip()
            if len(body) >= 24:
                start = len(body) // 3
                out.append((body[start : start + 18], match.group(1)))
    return out


def recall_at_5(kb: KnowledgeBase, questions: list[tuple[str, str]]) -> float:
    found = sum(any(h.article == article for h in kb.search(q, top_k=5).hits) for q, article in questions)
    return found / len(questions)


def test_scanned_copy_answers_article_questions_like_the_text_copy(
    knowledge: KnowledgeBases, mining_dir: Path, tmp_path: Path
) -> None:
    paragraphs = regulation_paragraphs(mining_dir / REGULATION)
    pages = render_pages(paragraphs, ScanStyle(dpi=200, seed=7), max_pages=2)
    printed = printed_paragraphs(paragraphs, pages)
    text_copy = tmp_path / "矿山安全法.txt"
    text_copy.write_text("\n".join(printed), encoding="utf-8")
    scan_copy = save_pdf(pages, tmp_path / "矿山安全法-扫描.pdf", dpi=200)

    text_kb, scan_kb = knowledge.create("text-copy"), knowledge.create("scan-copy")
    assert [o.status for o in ingest_paths(text_kb, [text_copy])] == ["indexed"]
    progress: list[IngestProgress] = []
    [scanned] = ingest_paths(scan_kb, [scan_copy], progress=progress.append)
    assert scanned.status == "indexed" and scanned.pages == 2 and scanned.error is None
    assert [p.pages_done for p in progress] == [0, 0, 1, 2, 2]  # OCR moves the page count as it goes
    assert scan_kb.find_document(scan_copy.name).status == "indexed"

    questions = article_questions(printed)
    assert len(questions) >= 12
    text_recall, scan_recall = recall_at_5(text_kb, questions), recall_at_5(scan_kb, questions)
    assert text_recall >= 0.9
    assert scan_recall >= text_recall - 0.03, (scan_recall, text_recall)

    # Citations name the page the article was printed on.
    page_of = {}
    for number, page in enumerate(pages, start=1):
        for line in page.text.splitlines():
            if match := ARTICLE.match(line):
                page_of[match.group(1)] = number
    for question, article in questions[:: max(1, len(questions) // 5)]:
        hits = [h for h in scan_kb.search(question, top_k=5).hits if h.article == article]
        assert hits and hits[0].page == page_of[article], (article, hits)
