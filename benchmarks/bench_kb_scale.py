"""Knowledge-base scale numbers: BM25 over the FULL LawRefBook corpus (LeCoQA hit@k, the issue's
reference), query latency p50/p95 at >= 100k chunks, ingestion speed and unchanged re-ingest time.

    .venv/bin/python benchmarks/bench_kb_scale.py [--chunks 100000] [--reuse] [--ingest PATH ...]

At 100k chunks the vectors are random unit vectors (embedding 100k passages takes hours on a
2-core CPU); the brute-force scan costs the same whatever the values, so the latency is real.
"hybrid_end_to_end" is KnowledgeBase.search (search.py) on questions it has not seen, so the
query embedding is included; then each component is timed on its own over the same questions.
--reuse keeps the 100k index of an earlier run (building it takes ~2 minutes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kb_corpora import SHARED, Passage, law_passages, lecoqa_queries, passage_text

from bendi.access.scope import KbScope
from bendi.core.paths import DataPaths
from bendi.knowledge.embedding import make_embedder
from bendi.knowledge.index import ScoredChunk
from bendi.knowledge.ingest import ingest_paths
from bendi.knowledge.library import KnowledgeBase, KnowledgeBases
from bendi.knowledge.search import CANDIDATES, plan_query, rrf, search
from bendi.knowledge.tokenize import fts_expression, query_terms


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def build(kb: KnowledgeBase, passages: list[Passage], target: int) -> dict[tuple[str, int], str]:
    """Index the real corpus once (vectors random, see above), then copies of it up to `target`
    chunks; returns (document, ordinal) -> LeCoQA key for the real (un-copied) documents."""
    rng = np.random.default_rng(0)
    by_doc: dict[str, list[int]] = {}
    for i, p in enumerate(passages):
        by_doc.setdefault(p.doc, []).append(i)
    keys = {(p.doc, p.chunk.ordinal): p.key for p in passages}
    reuse = kb.index.stats()[1] >= target
    copies = total = 0
    while not reuse and (copies == 0 or total < target):
        for doc, idx in by_doc.items():
            if total >= target and copies > 0:
                break
            name = doc if copies == 0 else f"{doc}#copy{copies}"
            doc_id = kb.index.upsert_document("bench:" + name, name, status="processing")
            items = [passages[i] for i in idx]
            vectors = rng.standard_normal((len(items), 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            kb.index.replace_chunks(doc_id, title=items[0].title, content_hash=name, bytes_=0, pages=0,
                                    chunks=[p.chunk for p in items], fts_texts=[passage_text(p) for p in items],
                                    vectors=vectors)  # fmt: skip
            total += len(items)
        copies += 1
    return keys


def bm25_full_corpus(kb: KnowledgeBase, keys: dict[tuple[str, int], str]) -> dict[str, float]:
    """LeCoQA hit@k of the product's BM25 alone over the whole corpus (copies are ignored)."""
    rows = kb.index._db().execute(  # noqa: SLF001
        "SELECT c.id, d.file, c.ordinal FROM chunks c JOIN documents d ON d.id = c.doc_id"
    )
    where = {r[0]: (r[1], r[2]) for r in rows}
    queries = [q for q in lecoqa_queries(None) if q.gold & set(keys.values())]
    hit5 = hit10 = r10 = 0.0
    for q in queries:
        ranked: list[str] = []
        for s in kb.index.keyword_search(q.text, 100):
            key = keys.get(where[s.chunk_id])
            if key and key not in ranked:
                ranked.append(key)
        hit5 += bool(q.gold & set(ranked[:5]))
        hit10 += bool(q.gold & set(ranked[:10]))
        r10 += len(q.gold & set(ranked[:10])) / len(q.gold)
    n = len(queries)
    return {"questions": n, "hit@5": round(hit5 / n, 3), "hit@10": round(hit10 / n, 3),
            "recall@10": round(r10 / n, 3)}  # fmt: skip


def latency(kb: KnowledgeBase, texts: list[str]) -> dict[str, dict[str, float]]:
    """End-to-end hybrid search through KnowledgeBase.search (search.py; query embedding NOT cached:
    every question is new), then each component on its own over the same questions."""
    kb.index.vector_search(np.ones(384, dtype=np.float32) / np.sqrt(384), 10)  # server warm state:
    kb.search("预热", top_k=10)  # vector matrix loaded, FTS pages and models warm
    timings: dict[str, list[float]] = {}

    @contextmanager
    def clock(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        timings.setdefault(name, []).append(1000 * (time.perf_counter() - started))

    # Three ways to search each question, interleaved question by question so that all three see
    # the same machine load, each with its query vectors uncached: the product's search; the same
    # question as one plain query (no formal terms, no neighbours: the search before the
    # everyday-question components); and with two model rewrites, which add a BM25 and a dense
    # list each. No model that may rewrite (>= 7B) runs here, so the halves of the question stand
    # in for its two lines: that row is the retrieval cost only; the model's own time comes on top.
    query_cache = kb.embedder._query_cache  # type: ignore[attr-defined]  # noqa: SLF001
    for t in texts:
        query_cache.clear()
        with clock("hybrid_end_to_end"):
            kb.search(t, top_k=10)
        query_cache.clear()
        with clock("hybrid_plain_query_before"):
            search(kb.index, kb.embedder, t, top_k=10, executor=kb._executor(),  # noqa: SLF001
                   plan=plan_query(t, expand=False), neighbour_weight=0.0)  # fmt: skip
        query_cache.clear()
        with clock("hybrid_with_2_rewrites_retrieval_only"):
            kb.search(t, top_k=10, rewrites=[t[: len(t) // 2], t[len(t) // 2 :]])
    for t in texts:
        with clock("hybrid_query_vector_cached"):
            kb.search(t, top_k=10)
    raw = make_embedder("multilingual-e5-small", threads=2)  # no cache: the real per-query cost
    for t in texts:
        with clock("query_embedding"):
            vector = raw.embed([t], kind="query")[0]
        with clock("bm25_segmentation"):
            terms = query_terms(t)
        with clock("bm25_common_term_pruning"):
            terms = kb.index._informative(terms)  # noqa: SLF001
        with clock("bm25_fts5_sql"):
            keyword = kb.index._match_search(fts_expression(terms), CANDIDATES, None)  # noqa: SLF001
        with clock("dense_scan"):
            dense = kb.index.vector_search(vector, CANDIDATES)
        with clock("rrf_fusion"):
            fused = rrf({"bm25": keyword, "dense": dense})[:10]
        with clock("fetch_chunk_rows"):
            kb.index.hits([ScoredChunk(c, s) for c, s, _ in fused])
    return {name: {"p50": round(statistics.median(v), 1), "p95": round(percentile(v, 0.95), 1), "max": round(max(v), 1)}
            for name, v in timings.items()}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=Path.home() / ".cache" / "bendi" / "bench-scale")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="keep an index built by an earlier run")
    parser.add_argument("--ingest", nargs="*", type=Path, default=[SHARED / "mining-safety-cn"],
                        help="library for the ingestion / re-ingestion timing")  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    keep = args.reuse and (args.home / "knowledge" / "scale").is_dir()
    if args.home.exists():
        shutil.rmtree(args.home / "knowledge" / "ingest", ignore_errors=True)
        if not keep:
            shutil.rmtree(args.home / "knowledge", ignore_errors=True)
    kbs = KnowledgeBases(
        DataPaths(args.home).ensure(), "multilingual-e5-small", lambda n: make_embedder(n, threads=2)
    )
    results: dict[str, object] = {}

    # 1. BM25 over the full corpus, one chunk per article (long ones split), LeCoQA hit@k.
    passages = list(law_passages(SHARED / "cn-laws-lawrefbook"))
    kb = kbs.get("scale", KbScope.everything()) if keep else kbs.create("scale")  # the operator's own data
    started = time.monotonic()
    keys = build(kb, passages, args.chunks)
    results["index_build_s"] = "reused" if keep else round(time.monotonic() - started, 1)
    results["corpus_article_chunks"] = len(passages)
    results["lecoqa_bm25_full_corpus"] = bm25_full_corpus(kb, keys)
    print(json.dumps(results, ensure_ascii=False), flush=True)
    results["latency_corpus_chunks"] = kb.index.stats()[1]

    # 2. Query latency at >= 100k chunks, without rerank, and where the time goes.
    texts = list(dict.fromkeys(q.text for q in lecoqa_queries(None)))[: args.queries]
    results["latency_queries"] = len(texts)
    results["latency_ms"] = latency(kb, texts)
    print(json.dumps(results["latency_ms"]), flush=True)

    # 3. Ingestion speed and unchanged re-ingestion.
    if args.ingest:
        lib = kbs.create("ingest")
        s = time.monotonic()
        first = ingest_paths(lib, args.ingest)
        first_s = time.monotonic() - s
        s = time.monotonic()
        second = ingest_paths(lib, args.ingest)
        second_s = time.monotonic() - s
        chunks = sum(o.chunks for o in first if o.status == "indexed")
        pages = sum(max(o.pages, 1) for o in first if o.status == "indexed")
        results["ingestion"] = {
            "files": len(first), "chunks": chunks, "pages_or_files": pages, "first_s": round(first_s, 1),
            "chunks_per_s": round(chunks / first_s, 2), "pages_per_s": round(pages / first_s, 2),
            "reingest_unchanged_s": round(second_s, 2), "reingest_ratio": round(second_s / first_s, 4),
            "all_unchanged": all(o.status == "unchanged" for o in second),
        }  # fmt: skip
        print(json.dumps(results["ingestion"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
