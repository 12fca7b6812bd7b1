"""Retrieval quality of bendi knowledge bases: recall@5, recall@10, MRR@10, BM25-only vs hybrid.

    .venv/bin/python benchmarks/bench_kb_retrieval.py                 # subsets sized for a 2-core CPU
    .venv/bin/python benchmarks/bench_kb_retrieval.py --full-lecoqa   # all ~64.7k articles (hours on CPU)

Embedding runs at a few passages per second on a shared 2-core CPU, so by default LeCoQA is
scored on a sampled corpus: the gold articles, 5 same-law neighbours each side (hard negatives)
and random articles up to --lecoqa-articles. BM25 over the FULL corpus is in bench_kb_scale.py.
Embeddings are cached by content under --cache, so a rerun only re-scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kb_corpora import (
    SHARED,
    Passage,
    Query,
    cmrc,
    law_passages,
    lecoqa_queries,
    lecoqa_subset,
    passage_text,
    pubmedqa,
)

from bendi.core.paths import DataPaths
from bendi.knowledge.embedding import make_embedder
from bendi.knowledge.library import KnowledgeBase, KnowledgeBases

MODES = ("bm25", "dense", "hybrid")


def build(kbs: KnowledgeBases, name: str, passages: Sequence[Passage]) -> tuple[KnowledgeBase, float]:
    """Index passages grouped by document through the real index and (cached) embedder."""
    kb = kbs.create(name)
    started = time.monotonic()
    by_doc: dict[str, list[Passage]] = {}
    for p in passages:
        by_doc.setdefault(p.doc, []).append(p)
    done = 0
    for doc, items in by_doc.items():
        doc_id = kb.index.upsert_document("bench:" + doc, doc, status="processing")
        texts = [passage_text(p) for p in items]
        vectors = kb.embedder.embed(texts, kind="passage")
        chunks = [p.chunk for p in items]
        kb.index.replace_chunks(doc_id, title=items[0].title, content_hash=doc, bytes_=0, pages=0, chunks=chunks,
                                fts_texts=texts, vectors=vectors)  # fmt: skip
        done += len(items)
        if done % 200 < len(items):
            rate = done / (time.monotonic() - started)
            print(f"  {name}: {done}/{len(passages)} passages, {rate:.1f}/s", file=sys.stderr, flush=True)
    return kb, time.monotonic() - started


def key_index(kb: KnowledgeBase, passages: Sequence[Passage]) -> dict[tuple[str, int], str]:
    """(document file, chunk ordinal) -> gold key, to map hits back to what the labels name."""
    return {(p.doc, p.chunk.ordinal): p.key for p in passages}


def evaluate(
    kb: KnowledgeBase, passages: Sequence[Passage], queries: Sequence[Query], mode: str
) -> dict[str, float]:
    ordinal = {
        row[0]: (row[1], row[2])
        for row in kb.index._db().execute(
            "SELECT c.id, d.file, c.ordinal FROM chunks c JOIN documents d ON d.id = c.doc_id"
        )  # noqa: SLF001
    }
    keys = key_index(kb, passages)
    r5 = r10 = mrr = 0.0
    latencies = []
    for q in queries:
        started = time.perf_counter()
        hits = kb.search(q.text, top_k=30, mode=mode).hits  # type: ignore[arg-type]
        latencies.append(time.perf_counter() - started)
        ranked: list[str] = []
        for h in hits:  # several chunks of one article count once
            key = keys.get(ordinal[h.chunk_id])
            if key and key not in ranked:
                ranked.append(key)
        found5 = len(q.gold & set(ranked[:5]))
        found10 = len(q.gold & set(ranked[:10]))
        r5 += found5 / len(q.gold)
        r10 += found10 / len(q.gold)
        first = next((i for i, k in enumerate(ranked[:10]) if k in q.gold), None)
        mrr += 0.0 if first is None else 1.0 / (first + 1)
    n = len(queries)
    latencies.sort()
    return {"recall@5": r5 / n, "recall@10": r10 / n, "mrr@10": mrr / n,
            "p50_ms": 1000 * latencies[n // 2], "p95_ms": 1000 * latencies[int(n * 0.95) - 1]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=Path("/tmp/bendi-bench-kb"))
    parser.add_argument("--lecoqa-questions", type=int, default=150)
    parser.add_argument("--lecoqa-articles", type=int, default=1500)
    parser.add_argument("--full-lecoqa", action="store_true", help="index every article (slow on CPU)")
    parser.add_argument("--cmrc-questions", type=int, default=300)
    parser.add_argument("--cmrc-split", default="trial", choices=("trial", "dev"))
    parser.add_argument("--cmrc-paragraphs", type=int, help="sample this many paragraphs (default: all)")
    parser.add_argument("--pubmed-questions", type=int, default=200)
    parser.add_argument("--only", choices=("lecoqa", "cmrc", "pubmedqa"))
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    import shutil

    if (args.home / "knowledge").exists():
        shutil.rmtree(args.home / "knowledge")  # indexes are rebuilt; the embedding cache is kept
    kbs = KnowledgeBases(
        DataPaths(args.home).ensure(), "multilingual-e5-small", lambda n: make_embedder(n, threads=2)
    )
    results: dict[str, object] = {}

    def run(name: str, passages: list[Passage], queries: list[Query], note: str) -> None:
        kb, build_s = build(kbs, name, passages)
        row: dict[str, object] = {"passages": len(passages), "questions": len(queries), "index_s": round(build_s, 1),
                                  "note": note}  # fmt: skip
        for mode in MODES:
            row[mode] = {k: round(v, 3) for k, v in evaluate(kb, passages, queries, mode).items()}
        results[name] = row
        print(json.dumps({name: row}, ensure_ascii=False), flush=True)

    if args.only in (None, "lecoqa"):
        all_passages = list(law_passages(SHARED / "cn-laws-lawrefbook"))
        queries = lecoqa_queries(args.lecoqa_questions)
        covered = {p.key for p in all_passages}
        queries = [q for q in queries if q.gold & covered]
        subset = (
            all_passages if args.full_lecoqa else lecoqa_subset(all_passages, queries, args.lecoqa_articles)
        )
        note = ("full corpus" if args.full_lecoqa else
                f"gold + 5 same-law neighbours each side + random, of {len(all_passages)} article chunks")  # fmt: skip
        run("lecoqa", subset, queries, note)
    if args.only in (None, "cmrc"):
        passages, queries = cmrc(args.cmrc_questions, args.cmrc_split, args.cmrc_paragraphs)
        sample = f"{len(passages)} sampled paragraphs" if args.cmrc_paragraphs else "every paragraph"
        run("cmrc2018", passages, queries, f"{args.cmrc_split} split, {sample} indexed")
    if args.only in (None, "pubmedqa"):
        passages, queries = pubmedqa(args.pubmed_questions)
        run("pubmedqa", passages, queries, "each question's abstract sections among the sampled abstracts")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
