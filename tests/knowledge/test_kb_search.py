"""Search internals that must stay correct while they are fast: the in-memory vector matrix follows
every add and delete (also writes made through another connection), BM25 runs on a worker thread
with the same results, fusion weights, and close() releasing every thread's connection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bendi.access.scope import KbScope
from bendi.knowledge import embedding as embedding_module
from bendi.knowledge import index as index_module
from bendi.knowledge.index import ScoredChunk, SQLiteIndex
from bendi.knowledge.ingest import ingest_paths
from bendi.knowledge.library import KnowledgeBases
from bendi.knowledge.records import Chunk
from bendi.knowledge.search import rrf, search
from bendi.knowledge.tokenize import fts_query

VENTILATION = "# 通风规定\n\n第一条 矿井必须采用机械通风。\n\n第二条 主要通风机必须安装在地面。\n"
BLASTING = (
    "# 爆破规定\n\n第一条 井下爆破作业必须由专职爆破工担任。\n\n第二条 爆破前必须撤出人员并设置警戒。\n"
)


def _files(kb_hits: list[str]) -> set[str]:
    return {Path(f).name for f in kb_hits}


def test_vector_cache_sees_added_and_deleted_documents(knowledge: KnowledgeBases, tmp_path: Path) -> None:
    kb = knowledge.create("cache")
    first = tmp_path / "通风.md"
    first.write_text(VENTILATION, encoding="utf-8")
    ingest_paths(kb, [first])
    # The first searches load the matrix (and cache the query vector) ...
    for mode in ("dense", "hybrid"):
        assert _files([h.file for h in kb.search("专职爆破工", top_k=5, mode=mode).hits]) == {"通风.md"}
    second = tmp_path / "爆破.md"
    second.write_text(BLASTING, encoding="utf-8")
    ingest_paths(kb, [second])
    # ... and the next search after an add sees the new document, in every mode.
    for mode in ("dense", "hybrid", "bm25"):
        hits = kb.search("专职爆破工", top_k=5, mode=mode).hits
        assert Path(hits[0].file).name == "爆破.md", (mode, hits)
    gone = kb.find_document("通风.md")
    kb.delete_document(gone.id)
    for mode in ("dense", "hybrid", "bm25"):
        hits = kb.search("矿井机械通风", top_k=5, mode=mode).hits
        assert all(h.doc_id != gone.id for h in hits), (mode, hits)
    assert len(kb.search("矿井机械通风", top_k=5, mode="dense").hits) == 2  # only 爆破.md's chunks left


def _unit(seed: int, n: int = 1) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _add(index: SQLiteIndex, name: str, vectors: np.ndarray) -> int:
    doc_id = index.upsert_document(name, name, status="processing")
    chunks = [Chunk(i, f"{name} 第{i}段", None, "", None, 0, 1) for i in range(len(vectors))]
    index.replace_chunks(doc_id, title=name, content_hash=name, bytes_=0, pages=0, chunks=chunks,
                         fts_texts=[c.text for c in chunks], vectors=vectors)  # fmt: skip
    return doc_id


def test_vector_cache_sees_writes_made_through_another_connection(tmp_path: Path) -> None:
    reader, writer = SQLiteIndex(tmp_path / "i.sqlite3"), SQLiteIndex(tmp_path / "i.sqlite3")
    try:
        a = _unit(1, 3)
        _add(writer, "a", a)
        assert len(reader.vector_search(a[0], 10)) == 3  # loads the matrix
        b = _unit(2)
        b_id = _add(writer, "b", b)  # another process, as far as `reader` can tell
        top = reader.vector_search(b[0], 1)[0]
        assert reader.hits([top])[0].doc_id == b_id and abs(top.score - 1.0) < 1e-5
        writer.delete_document(b_id)
        assert all(reader.hits([s])[0].doc_id != b_id for s in reader.vector_search(b[0], 10))
        filtered = reader.vector_search(a[0], 10, doc_ids=[b_id])  # a filter on a deleted document
        assert filtered == []
    finally:
        reader.close()
        writer.close()


def test_bm25_on_a_worker_thread_gives_the_same_ranking(knowledge: KnowledgeBases, tmp_path: Path) -> None:
    kb = knowledge.create("threads")
    for name, text in (("通风.md", VENTILATION), ("爆破.md", BLASTING)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    ingest_paths(kb, [tmp_path / "通风.md", tmp_path / "爆破.md"])
    question = "爆破前人员怎么撤出？"
    threaded = kb.search(question, top_k=4)  # KnowledgeBase.search runs BM25 on its executor
    inline = search(kb.index, kb.embedder, question, top_k=4)
    assert [(h.chunk_id, h.ranks) for h in threaded.hits] == [(h.chunk_id, h.ranks) for h in inline.hits]
    assert threaded.best_bm25 == inline.best_bm25 > 0
    kb.close()  # closes the worker threads' connections too; the base stays usable afterwards
    assert kb.search(question, top_k=1).hits[0].chunk_id == inline.hits[0].chunk_id
    knowledge.delete("threads", KbScope.everything())
    assert not kb.directory.exists()


def test_weighted_rrf_lets_one_ranking_count_more() -> None:
    bm25 = [ScoredChunk(1, 9.0), ScoredChunk(2, 8.0)]
    dense = [ScoredChunk(2, 0.9), ScoredChunk(1, 0.8)]
    assert rrf({"bm25": bm25, "dense": dense})[0][0] == 1  # a tie, broken by chunk id
    fused = rrf({"bm25": bm25, "dense": dense}, weights={"bm25": 1.0, "dense": 2.0})
    assert [cid for cid, _, _ in fused] == [2, 1]
    assert fused[0][2] == {"bm25": 2, "dense": 1}


def test_bm25_query_drops_punctuation_stopwords_and_repeats() -> None:
    expression = fts_query("矿井的通风，矿井的通风？？ 什么 the")
    terms = expression.split(" OR ")
    assert len(terms) == len(set(terms))
    assert '"的"' not in terms and '"什么"' not in terms and '"the"' not in terms
    assert not any(mark in expression for mark in "，？")


def test_common_terms_are_left_out_of_a_large_bases_bm25_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "COMMON_TERMS_FROM_CHUNKS", 1)  # "large" from the first chunk
    index = SQLiteIndex(tmp_path / "i.sqlite3")

    def add(name: str, text: str) -> int:
        doc_id = index.upsert_document(name, name, status="processing")
        index.replace_chunks(doc_id, title=name, content_hash=name, bytes_=0, pages=0,
                             chunks=[Chunk(0, text, None, "", None, 0, len(text))], fts_texts=[text],
                             vectors=_unit(doc_id))  # fmt: skip
        return doc_id

    try:
        for i in range(9):
            add(f"通风{i}", "通风 规定")
        gas = add("瓦斯", "瓦斯 规定")
        assert index._informative(["瓦斯", "规定", "爆破"]) == ["瓦斯", "爆破"]  # noqa: SLF001
        hits = index.keyword_search("瓦斯的规定", 10)  # 规定 is in every chunk: only 瓦斯 is asked
        assert [index.hits([h])[0].doc_id for h in hits] == [gas]
        assert len(index.keyword_search("通风规定", 20)) == 10  # only common words: still answered
        for i in range(9):
            add(f"瓦斯{i}", "瓦斯")
        # the write moved the generation: frequencies are counted again, now 瓦斯 is common too
        assert index._informative(["瓦斯", "爆破"]) == ["爆破"]  # noqa: SLF001
    finally:
        index.close()


def test_query_embeddings_are_kept_in_a_small_lru(
    knowledge: KnowledgeBases, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedding_module, "QUERY_CACHE_SIZE", 2)
    embedder = knowledge.create("lru").embedder
    first = embedder.embed(["瓦斯检查"], kind="query")
    embedder.embed(["通风系统"], kind="query")
    again = embedder.embed(["瓦斯检查"], kind="query")  # a hit: now the most recently used
    embedder.embed(["爆破作业"], kind="query")  # evicts 通风系统, the least recently used
    assert np.array_equal(first, again)
    assert list(embedder._query_cache) == ["瓦斯检查", "爆破作业"]  # type: ignore[attr-defined]  # noqa: SLF001
    both = embedder.embed(["爆破作业", "瓦斯检查"], kind="query")
    assert both.shape == (2, first.shape[1]) and np.array_equal(both[1], first[0])
