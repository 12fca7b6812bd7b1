"""Knowledge bases end to end without HTTP: real files, real embedder, real SQLite, real SmolLM2."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bendi.access.scope import KbScope
from bendi.core.errors import AlreadyExistsError, InvalidNameError, NotFoundError
from bendi.knowledge.answer import answer, fit_sources
from bendi.knowledge.ingest import ingest_paths
from bendi.knowledge.library import KnowledgeBase, KnowledgeBases

QUESTIONS = [
    ("矿山建设工程的安全设施必须和主体工程同时设计吗？", "矿山安全法", "第七条"),
    ("企业取得安全生产许可证应当具备哪些安全生产条件？", "安全生产许可证条例", "第六条"),
    ("生产经营单位应当如何制定生产安全事故应急救援预案？", "生产安全事故应急条例", None),
]


@pytest.mark.parametrize(("question", "law", "article"), QUESTIONS)
def test_hybrid_search_finds_the_right_law_and_article(
    mining_kb: KnowledgeBase, question: str, law: str, article: str | None
) -> None:
    hits = mining_kb.search(question, top_k=5).hits
    assert law in hits[0].file
    if article:
        assert article in [h.article for h in hits[:3]]
    assert all(h.text and h.heading for h in hits)


def test_search_modes_and_document_filter(mining_kb: KnowledgeBase) -> None:
    question = QUESTIONS[0][0]
    assert mining_kb.search(question, mode="bm25").hits[0].ranks == {"bm25": 1}
    assert mining_kb.search(question, mode="dense").hits[0].ranks == {"dense": 1}
    other = next(d for d in mining_kb.documents() if "应急条例" in d.file)
    only = mining_kb.search(question, document_ids=[other.id]).hits
    assert only and all(h.doc_id == other.id for h in only)


def test_cli_search_json_contract(mining_kb: KnowledgeBase) -> None:
    home = mining_kb.directory.parents[1]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "bendi"), "kb", "search", "mining", QUESTIONS[0][0], "--top-k", "3", "--json"],
        capture_output=True, text=True, env={"BENDI_HOME": str(home), "PATH": "/usr/bin:/bin"}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    hits = json.loads(done.stdout)
    assert len(hits) == 3
    assert {"file", "page", "article", "heading", "score", "text"} <= set(hits[0])
    assert "矿山安全法" in hits[0]["file"] and hits[0]["article"] == "第七条"


def test_readd_unchanged_is_skipped_and_changed_replaces(knowledge: KnowledgeBases, tmp_path: Path) -> None:
    kb = knowledge.create("rules")
    doc = tmp_path / "规定.md"
    doc.write_text(
        "# 通风规定\n\n第一条 矿井必须采用机械通风。\n\n第二条 主要通风机必须安装在地面。\n", encoding="utf-8"
    )
    first = ingest_paths(kb, [doc])
    assert [(o.status, o.chunks) for o in first] == [("indexed", 2)]
    computed = kb.embedder.computed  # type: ignore[attr-defined]
    again = ingest_paths(kb, [doc])
    assert [o.status for o in again] == ["unchanged"]
    assert kb.embedder.computed == computed  # type: ignore[attr-defined]  # nothing re-embedded
    doc.write_text(
        "# 通风规定\n\n第一条 矿井必须采用机械通风。\n\n第三条 新增条文：风门必须能自动关闭。\n",
        encoding="utf-8",
    )
    changed = ingest_paths(kb, [doc])
    assert [(o.status, o.chunks) for o in changed] == [("indexed", 2)]
    assert kb.embedder.computed == computed + 1  # type: ignore[attr-defined]  # only the new article
    assert kb.info().chunks == 2 and kb.info().documents == 1
    texts = [h.text for h in kb.search("风门自动关闭", top_k=5).hits]
    assert any("风门" in t for t in texts) and not any("地面" in t for t in texts)


def test_folder_with_broken_ocr_and_hostile_names(
    knowledge: KnowledgeBases, tmp_path: Path, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENDI_KB_OCR", "0")  # the needs_ocr path; OCR itself: tests/knowledge/test_ocr*.py
    folder = tmp_path / "library"
    (folder / "子目录 with space").mkdir(parents=True)
    hostile = ["a'; DROP TABLE chunks;--.md", '名称 "quoted" $(rm -rf x).txt', "子目录 with space/-rf.md"]
    for i, name in enumerate(hostile):
        (folder / name).write_text(f"第{'一二三'[i]}条 瓦斯检查员必须持证上岗，编号{i}。\n", encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n" + b"\x00\xff" * 100)
    shutil.copy(shared_dir / "rag-eval-data/import-fixtures-cn/mineru/small_ocr.pdf", folder / "scan.pdf")
    kb = knowledge.create("hostile")
    outcomes = {Path(o.file).name: o for o in ingest_paths(kb, [folder])}
    assert outcomes["broken.pdf"].status == "failed" and "broken.pdf" in (outcomes["broken.pdf"].error or "")
    assert outcomes["scan.pdf"].status == "needs_ocr" and "OCR" in (outcomes["scan.pdf"].error or "")
    for name in hostile:
        assert outcomes[Path(name).name].status == "indexed"
    docs = {Path(d.file).name: d for d in kb.documents()}
    assert docs["broken.pdf"].status == "failed" and docs["scan.pdf"].status == "needs_ocr"
    assert kb.info().chunks == 3
    kb.delete_document(kb.find_document("-rf.md").id)
    assert kb.info().chunks == 2


def test_names_are_validated(knowledge: KnowledgeBases) -> None:
    everything = KbScope.everything()
    for bad in ("../etc", "a/b", "a\\b", "", "   ", "a\u202eb"):
        with pytest.raises(InvalidNameError):
            knowledge.create(bad)
    assert knowledge.create("ok-name").name == "ok-name"  # an ASCII name is its own identifier, as before
    with pytest.raises(AlreadyExistsError):
        knowledge.create("ok-name")
    with pytest.raises(NotFoundError):
        knowledge.get("missing", everything)
    knowledge.delete("ok-name", everything)
    assert knowledge.names(everything) == []


@pytest.fixture(scope="module")
def engine(smollm2_path: Path):  # type: ignore[no-untyped-def]
    from bendi.engines.llamacpp.engine import LlamaCppEngine
    from bendi.engines.llamacpp.model import ContextConfig

    engine = LlamaCppEngine(
        "smollm2", smollm2_path, ContextConfig(context_tokens=2048, sequences=1, batch_tokens=512, threads=2)
    )
    yield engine
    asyncio.run(engine.close())


def test_answer_cites_the_right_sources(mining_kb: KnowledgeBase, engine) -> None:  # type: ignore[no-untyped-def]
    result = asyncio.run(answer(mining_kb, QUESTIONS[0][0], engine, max_tokens=48))
    assert not result.refused and result.answer
    assert result.citations and result.citations[0].index == 1
    top = result.citations[0].hit
    assert "矿山安全法" in top.file and top.article == "第七条"
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0


def test_unrelated_question_is_refused_without_calling_the_model(mining_kb: KnowledgeBase, engine) -> None:  # type: ignore[no-untyped-def]
    for question, refusal in (
        ("巴黎埃菲尔铁塔有多高？", "不知道"),
        ("How do I bake sourdough bread?", "don't know"),
    ):
        result = asyncio.run(answer(mining_kb, question, engine))
        assert result.refused and refusal in result.answer
        assert result.citations == () and result.usage.completion_tokens == 0


def test_sources_are_fitted_to_a_small_window(mining_kb: KnowledgeBase, engine) -> None:  # type: ignore[no-untyped-def]
    hits = mining_kb.search(QUESTIONS[1][0], top_k=10).hits
    messages, kept, notes = fit_sources(engine, QUESTIONS[1][0], hits, answer_tokens=1700)
    rendered = engine.render_chat(messages)
    assert engine.count_tokens(rendered.text) + 1700 <= engine.info.context_tokens
    assert 0 < len(kept) < len(hits) and notes and "context window" in " ".join(notes)
    assert kept == hits[: len(kept)]  # the strongest are kept, in rank order
    assert "[1]" in messages[-1].content and "ignore" in messages[0].content
