"""Retrieval quality of bendi knowledge bases: recall@5, recall@10, MRR@10, BM25 vs dense vs hybrid.

    .venv/bin/python benchmarks/bench_kb_retrieval.py                 # sized for a 2-core CPU
    .venv/bin/python benchmarks/bench_kb_retrieval.py --only lecoqa   # one data set
    .venv/bin/python benchmarks/bench_kb_retrieval.py --full-lecoqa   # all ~66.9k article chunks (hours on CPU)
    .venv/bin/python benchmarks/bench_kb_retrieval.py --only lecoqa --ablation   # each component on/off
    .venv/bin/python benchmarks/bench_kb_retrieval.py --only lecoqa --lecoqa-others 20000 --ablation  # 26.7k
    ... --only lecoqa --lecoqa-others 20000 --ablation --examples   # + LeCoQA's 1,234 non-test questions
                                                                     #   as the base's answered examples

--cached-only scores only the articles whose vectors are already cached (a partly embedded corpus)
and the questions they answer; a question keeps its half. Indexes and the embedding cache live under
--home (default ~/.cache/bendi/bench, outside the repository).

Embedding runs at ~10 passages per second on a shared 2-core CPU, so by default LeCoQA is scored on
every article of every law that holds a gold article of the test split (302 questions, 55 laws:
all their same-law articles are hard negatives) plus --lecoqa-others random articles of other laws
(7,725 chunks). The fusion (RRF k and dense weight) is tuned on every other question and reported
on the rest ("held_out_half"); "hybrid" is always the product's search with its defaults. BM25 over
the FULL corpus is in bench_kb_scale.py. Embeddings are cached by content under --home/cache, so a
rerun only re-indexes and re-scores (minutes instead of ~15 minutes for LeCoQA).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kb_ablation import ablation, table, without_headers
from kb_corpora import (
    SHARED,
    Passage,
    Query,
    cmrc,
    law_passages,
    lecoqa_corpus,
    lecoqa_queries,
    lecoqa_train_queries,
    passage_embedding_text,
    passage_text,
    pubmedqa,
)

from bendi.core.paths import DataPaths
from bendi.knowledge.embedding import make_embedder
from bendi.knowledge.library import KnowledgeBase, KnowledgeBases
from bendi.knowledge.search import CANDIDATES, rrf

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
        vectors = kb.embedder.embed([passage_embedding_text(p) for p in items], kind="passage")
        chunks = [p.chunk for p in items]
        kb.index.replace_chunks(doc_id, title=items[0].title, content_hash=doc, bytes_=0, pages=0, chunks=chunks,
                                fts_texts=texts, vectors=vectors)  # fmt: skip
        done += len(items)
        if done % 200 < len(items):
            rate = done / (time.monotonic() - started)
            print(f"  {name}: {done}/{len(passages)} passages, {rate:.1f}/s", file=sys.stderr, flush=True)
    return kb, time.monotonic() - started


def add_examples(
    kb: KnowledgeBase, passages: Sequence[Passage], examples: Sequence[Query]
) -> tuple[int, set[str]]:
    """Store `examples` as the base's answered questions through the product's import (citations by
    document and article); gold articles not in the corpus are left out. Returns (stored, cited keys)."""
    from bendi.knowledge.examples import Example, ExampleCitation

    where = {p.key: (p.doc, p.chunk.article) for p in passages}
    items, cited = [], set()
    for q in examples:
        keys = sorted(k for k in q.gold if k in where)
        if keys:
            items.append(Example(q.text, tuple(ExampleCitation(*where[k]) for k in keys)))
            cited.update(keys)
    return kb.add_examples(list({e.question: e for e in items}.values())), cited


def cached_passages(kbs: KnowledgeBases, passages: Sequence[Passage]) -> list[Passage]:
    """The passages whose embedding the cache already holds (for a run on a partly embedded corpus)."""
    import hashlib
    import sqlite3

    db = sqlite3.connect(kbs._paths.cache / "embeddings.sqlite3")  # noqa: SLF001
    have = {bytes(r[0]) for r in db.execute("SELECT text_sha256 FROM embeddings")}
    db.close()
    digest = lambda p: hashlib.sha256(passage_embedding_text(p).encode("utf-8")).digest()  # noqa: E731
    return [p for p in passages if digest(p) in have]


class Judge:
    """Maps chunk ids back to the keys gold labels name, and scores rankings of them."""

    def __init__(self, kb: KnowledgeBase, passages: Sequence[Passage]) -> None:
        keys = {(p.doc, p.chunk.ordinal): p.key for p in passages}
        rows = kb.index._db().execute(  # noqa: SLF001
            "SELECT c.id, d.file, c.ordinal FROM chunks c JOIN documents d ON d.id = c.doc_id"
        )
        self.key_of = {int(r[0]): keys.get((r[1], r[2])) for r in rows}

    def ranked(self, chunk_ids: Sequence[int]) -> list[str]:
        out: list[str] = []
        for cid in chunk_ids:  # several chunks of one article count once
            key = self.key_of.get(cid)
            if key and key not in out:
                out.append(key)
        return out

    @staticmethod
    def score(rankings: Sequence[list[str]], queries: Sequence[Query]) -> dict[str, float]:
        r5 = r10 = mrr = 0.0
        for ranked, q in zip(rankings, queries, strict=True):
            r5 += len(q.gold & set(ranked[:5])) / len(q.gold)
            r10 += len(q.gold & set(ranked[:10])) / len(q.gold)
            first = next((i for i, k in enumerate(ranked[:10]) if k in q.gold), None)
            mrr += 0.0 if first is None else 1.0 / (first + 1)
        n = max(1, len(queries))
        return {"recall@5": r5 / n, "recall@10": r10 / n, "mrr@10": mrr / n}


def evaluate(kb: KnowledgeBase, judge: Judge, queries: Sequence[Query], mode: str) -> dict[str, float]:
    """The product's search (KnowledgeBase.search, default weights) in one mode."""
    rankings, latencies = [], []
    for q in queries:
        started = time.perf_counter()
        hits = kb.search(q.text, top_k=30, mode=mode).hits  # type: ignore[arg-type]
        latencies.append(time.perf_counter() - started)
        rankings.append(judge.ranked([h.chunk_id for h in hits]))
    n = len(queries)
    latencies.sort()
    return {**judge.score(rankings, queries), "p50_ms": 1000 * latencies[n // 2],
            "p95_ms": 1000 * latencies[max(0, int(n * 0.95) - 1)]}  # fmt: skip


def tune(kb: KnowledgeBase, judge: Judge, tune_on: Sequence[Query]) -> dict[str, object]:
    """Grid-search the fusion (dense weight, RRF k) on `tune_on` only, from each question's two
    candidate lists; returns the best setting by recall@10 (then MRR@10) and the whole grid."""
    lists = []
    for q in tune_on:
        vector = kb.embedder.embed([q.text], kind="query")[0]
        lists.append(
            (kb.index.keyword_search(q.text, CANDIDATES), kb.index.vector_search(vector, CANDIDATES))
        )
    grid = []
    for k in (5, 10, 20, 30, 60):
        for dense_weight in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0):
            weights = {"bm25": 1.0, "dense": dense_weight}
            rankings = [
                judge.ranked([cid for cid, _, _ in rrf({"bm25": kw, "dense": dn}, k=k, weights=weights)[:30]])
                for kw, dn in lists
            ]
            grid.append({"k": k, "dense_weight": dense_weight, **judge.score(rankings, tune_on)})
    best = max(grid, key=lambda row: (round(float(row["recall@10"]), 6), float(row["mrr@10"])))
    return {"best": best, "grid": grid}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=Path.home() / ".cache" / "bendi" / "bench",
                        help="indexes (rebuilt) and the embedding cache (kept) live here")  # fmt: skip
    parser.add_argument("--cached-only", action="store_true",
                        help="LeCoQA: index only passages already in the embedding cache (a partial prewarm)")  # fmt: skip
    parser.add_argument("--ablation", action="store_true",
                        help="LeCoQA: each everyday-question component on/off (kb_ablation.py)")  # fmt: skip
    parser.add_argument("--lecoqa-questions", type=int, help="default: all of the test split")
    parser.add_argument("--lecoqa-others", type=int, default=1000,
                        help="random articles of other laws added as distractors")  # fmt: skip
    parser.add_argument("--examples", action="store_true",
                        help="LeCoQA: store the questions outside its test split as the base's answered examples")  # fmt: skip
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

    def run(
        name: str,
        passages: list[Passage],
        queries: list[Query],
        note: str,
        tune_half: bool = False,
        halves: tuple[list[Query], list[Query]] | None = None,
        examples: Sequence[Query] = (),
    ) -> None:
        kb, build_s = build(kbs, name, passages)
        judge = Judge(kb, passages)
        if examples:
            started = time.monotonic()
            stored, cited = add_examples(kb, passages, examples)
            print(f"  {name}: {stored} example questions stored in {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
        row: dict[str, object] = {"passages": len(passages), "questions": len(queries), "index_s": round(build_s, 1),
                                  "note": note}  # fmt: skip
        splits = {"all": queries}
        if tune_half:  # tune the fusion on one half, report on the other, which tuning never saw
            # The split rule: questions in lecoqa_queries' seeded order, even positions tune, odd
            # positions held out (`halves` keeps that parity when a subset is evaluated).
            tune_on, held_out = halves or (queries[0::2], queries[1::2])
            splits = {"all": queries, "tune_half": tune_on, "held_out_half": held_out}
            if (
                examples
            ):  # the held-out questions an example answers with one of their gold articles, and the rest
                splits["held_out_gold_cited_by_an_example"] = [q for q in held_out if q.gold & cited]
                splits["held_out_gold_cited_by_no_example"] = [q for q in held_out if not q.gold & cited]
            row["tuning"] = tune(kb, judge, splits["tune_half"])["best"]
            if args.ablation:
                row["ablation"] = ablation(kb, judge, splits["tune_half"], splits["held_out_half"])
                row["ablation"]["bm25 without contextual headers"] = without_headers(  # type: ignore[index]
                    kbs, passages, Judge, splits["tune_half"], splits["held_out_half"])  # fmt: skip
                print(table(row["ablation"]), flush=True)  # type: ignore[arg-type]
        for split, subset in splits.items():
            row[split] = {mode: {k: round(v, 3) for k, v in evaluate(kb, judge, subset, mode).items()}
                          for mode in MODES}  # fmt: skip
            row[split]["questions"] = len(subset)
        results[name] = row
        print(json.dumps({name: row}, ensure_ascii=False), flush=True)

    if args.only in (None, "lecoqa"):
        all_passages = list(law_passages(SHARED / "cn-laws-lawrefbook"))
        queries = lecoqa_queries(args.lecoqa_questions)
        covered = {p.key for p in all_passages}
        queries = [q for q in queries if q.gold & covered]
        subset = (
            all_passages if args.full_lecoqa else lecoqa_corpus(all_passages, queries, args.lecoqa_others)
        )
        gold = set().union(*(q.gold for q in queries))
        gold_laws = len({p.doc for p in all_passages if p.key in gold})
        note = ("full corpus" if args.full_lecoqa else
                f"every article of the {gold_laws} laws holding a gold article + {args.lecoqa_others} random "
                f"articles of other laws, of {len(all_passages)} article chunks")  # fmt: skip
        halves = None
        if args.cached_only:  # only the articles whose vectors are cached, and the questions they answer
            subset = cached_passages(kbs, subset)
            have = {p.key for p in subset}
            answered = [i for i, q in enumerate(queries) if q.gold & covered <= have]
            halves = (
                [queries[i] for i in answered if i % 2 == 0],
                [queries[i] for i in answered if i % 2 == 1],
            )
            queries = [queries[i] for i in answered]
            note += (
                f"; --cached-only: {len(subset)} chunks whose vectors were cached, {len(queries)} questions"
            )
        examples = lecoqa_train_queries() if args.examples else []
        if examples:
            note += f"; {len(examples)} non-test questions stored as answered examples"
        run("lecoqa", subset, queries, note, tune_half=True, halves=halves, examples=examples)
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
