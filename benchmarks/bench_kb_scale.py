"""Knowledge-base scale numbers: BM25 over the FULL LawRefBook corpus (LeCoQA hit@k, the issue's
reference), query latency p50/p95 at >= 100k chunks, ingestion speed and unchanged re-ingest time.

    .venv/bin/python benchmarks/bench_kb_scale.py [--chunks 100000] [--ingest PATH ...]

At 100k chunks the vectors are random unit vectors (embedding 100k passages takes hours on a
2-core CPU); the brute-force scan costs the same whatever the values, so the latency is real.
The query embedding is timed separately (it is the same for any corpus size).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kb_corpora import SHARED, law_passages, lecoqa_queries, passage_text

from bendi.core.paths import DataPaths
from bendi.knowledge.embedding import make_embedder
from bendi.knowledge.ingest import ingest_paths
from bendi.knowledge.library import KnowledgeBases
from bendi.knowledge.records import Chunk
from bendi.knowledge.search import search


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=Path("/tmp/bendi-bench-scale"))
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ingest", nargs="*", type=Path, default=[SHARED / "mining-safety-cn"],
                        help="library for the ingestion / re-ingestion timing")  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.home.exists():
        shutil.rmtree(args.home / "knowledge", ignore_errors=True)
    kbs = KnowledgeBases(
        DataPaths(args.home).ensure(), "multilingual-e5-small", lambda n: make_embedder(n, threads=2)
    )
    results: dict[str, object] = {}

    # 1. BM25 over the full corpus, one chunk per article (long ones split), LeCoQA hit@k.
    passages = list(law_passages(SHARED / "cn-laws-lawrefbook"))
    kb = kbs.create("scale")
    rng = np.random.default_rng(0)
    started = time.monotonic()
    by_doc: dict[str, list[int]] = {}
    for i, p in enumerate(passages):
        by_doc.setdefault(p.doc, []).append(i)
    keys: dict[tuple[str, int], str] = {}
    copies = 0
    total = 0
    while total < args.chunks:
        for doc, idx in by_doc.items():
            if total >= args.chunks and copies > 0:
                break
            name = doc if copies == 0 else f"{doc}#copy{copies}"
            doc_id = kb.index.upsert_document("bench:" + name, name, status="processing")
            items = [passages[i] for i in idx]
            vectors = rng.standard_normal((len(items), 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            chunks = [
                Chunk(n, p.chunk.text, None, p.chunk.heading, p.chunk.article, 0, 0)
                for n, p in enumerate(items)
            ]
            kb.index.replace_chunks(doc_id, title=items[0].title, content_hash=name, bytes_=0, pages=0, chunks=chunks,
                                    fts_texts=[passage_text(p) for p in items], vectors=vectors)  # fmt: skip
            if copies == 0:
                keys.update({(name, n): p.key for n, p in enumerate(items)})
            total += len(items)
        if copies == 0:
            results["bm25_full_corpus_index_s"] = round(time.monotonic() - started, 1)
            results["corpus_article_chunks"] = total
            # score BM25 on the real, un-duplicated corpus before padding
            rows = kb.index._db().execute(
                "SELECT c.id, d.file, c.ordinal FROM chunks c JOIN documents d ON d.id = c.doc_id"
            )  # noqa: SLF001
            where = {r[0]: (r[1], r[2]) for r in rows}
            queries = [q for q in lecoqa_queries(None) if q.gold & set(keys.values())]
            hit5 = hit10 = r10 = 0.0
            for q in queries:
                ranked: list[str] = []
                for s in kb.index.keyword_search(q.text, 30):
                    key = keys.get(where[s.chunk_id])
                    if key and key not in ranked:
                        ranked.append(key)
                hit5 += bool(q.gold & set(ranked[:5]))
                hit10 += bool(q.gold & set(ranked[:10]))
                r10 += len(q.gold & set(ranked[:10])) / len(q.gold)
            n = len(queries)
            results["lecoqa_bm25_full_corpus"] = {"questions": n, "hit@5": round(hit5 / n, 3),
                                                  "hit@10": round(hit10 / n, 3), "recall@10": round(r10 / n, 3)}  # fmt: skip
            print(json.dumps(results, ensure_ascii=False), flush=True)
        copies += 1
    docs, chunks_total = kb.index.stats()
    results["latency_corpus_chunks"] = chunks_total

    # 2. Query latency at >= 100k chunks, without rerank.
    texts = [q.text for q in lecoqa_queries(None)][: args.queries]
    embed_ms = []
    vectors = []
    for t in texts:
        s = time.perf_counter()
        vectors.append(kb.embedder.embed([t], kind="query")[0])
        embed_ms.append(1000 * (time.perf_counter() - s))
    kb.index.vector_search(vectors[0], 10)  # load the vector matrix once (server warm state)
    retrieval_ms, bm25_ms, dense_ms = [], [], []
    for t, v in zip(texts, vectors, strict=True):
        s = time.perf_counter()
        kb.index.keyword_search(t, 50)
        bm25_ms.append(1000 * (time.perf_counter() - s))
        s = time.perf_counter()
        kb.index.vector_search(v, 50)
        dense_ms.append(1000 * (time.perf_counter() - s))
        s = time.perf_counter()
        search(kb.index, kb.embedder, t, top_k=10)  # query vector cached: fusion + both retrievers + fetch
        retrieval_ms.append(1000 * (time.perf_counter() - s))
    results["latency_ms"] = {
        name: {"p50": round(statistics.median(v), 1), "p95": round(percentile(v, 0.95), 1)}
        for name, v in (
            ("hybrid_retrieval", retrieval_ms),
            ("bm25", bm25_ms),
            ("dense_bruteforce", dense_ms),
            ("query_embedding", embed_ms),
        )  # fmt: skip
    }
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
