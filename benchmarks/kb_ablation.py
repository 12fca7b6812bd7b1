"""Ablation of the everyday-question retrieval components (bench_kb_retrieval.py --ablation).

Each question's ranked lists are computed once through the real index and embedder (BM25 of the
question, BM25 of the question + formal terms, dense of the question and of each clause); each
configuration is then the product's own `rrf` over a subset of those lists. Free parameters
(clause weight, RRF k, dense weight) are chosen on the tune half only and reported on the held-out
half, which tuning never reads.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from kb_corpora import Passage, Query

from bendi.knowledge.examples import EXAMPLE_DEPTH, EXAMPLE_WEIGHT, cited_ranking, nearest_examples
from bendi.knowledge.index import ScoredChunk
from bendi.knowledge.library import KnowledgeBase
from bendi.knowledge.rewrite_rules import clauses, expansion_terms
from bendi.knowledge.search import (
    CANDIDATES,
    CLAUSE_WEIGHT,
    NEIGHBOUR_DEPTH,
    NEIGHBOUR_WEIGHT,
    RRF_K,
    WEIGHTS,
    neighbour_boost,
    own_best_first,
    rrf,
)


@dataclass
class Lists:
    bm25: list[ScoredChunk]
    bm25_expanded: list[ScoredChunk]
    dense: list[ScoredChunk]
    dense_clauses: list[list[ScoredChunk]]
    dense_expanded: list[ScoredChunk]
    neighbours: dict[int, list[int]]
    examples: list[tuple[int, float]]  # the nearest answered examples (up to EXAMPLES_DEEPEST)
    cited: dict[int, list[int]]  # their cited chunks


EXAMPLES_DEEPEST = 20


def collect(kb: KnowledgeBase, queries: Sequence[Query]) -> list[Lists]:
    ids = [int(r[0]) for r in kb.index._db().execute("SELECT id FROM chunks")]  # noqa: SLF001
    neighbours: dict[int, list[int]] = {}
    for start in range(0, len(ids), 5000):
        neighbours.update(kb.index.neighbours(ids[start : start + 5000]))
    out = []
    for q in queries:
        extra = expansion_terms(q.text)
        parts = clauses(q.text)
        texts = [q.text, *parts, f"{q.text} {extra}" if extra else q.text]
        vectors = kb.embedder.embed(texts, kind="query")
        bm25 = kb.index.keyword_search(q.text, CANDIDATES)
        expanded = kb.index.keyword_search(f"{q.text} {extra}", CANDIDATES) if extra else bm25
        dense = [kb.index.vector_search(v, CANDIDATES) for v in vectors]
        nearest = nearest_examples(vectors[0], *kb.index.example_vectors(), depth=EXAMPLES_DEEPEST)
        cited = kb.index.cited_chunks([e for e, _ in nearest])
        out.append(Lists(bm25, expanded, dense[0], dense[1:-1], dense[-1], neighbours, nearest, cited))
    return out


@dataclass(frozen=True)
class Config:
    name: str
    expand: bool = False
    split: bool = False
    expand_dense: bool = False  # embed the question + formal terms instead of the question
    bm25: bool = True
    dense: bool = True
    k: int = RRF_K
    dense_weight: float = WEIGHTS["dense"]
    clause_weight: float = CLAUSE_WEIGHT
    neighbour: float = 0.0  # weight lent to the document neighbours of the top fused chunks
    examples: float = 0.0  # weight of the list of chunks the nearest answered examples cite
    example_depth: int = EXAMPLE_DEPTH


def fuse(lists: Lists, c: Config) -> list[int]:
    rankings: dict[str, Sequence[ScoredChunk]] = {}
    weights: dict[str, float] = {"bm25": 1.0, "dense": c.dense_weight}
    if c.bm25:
        rankings["bm25"] = lists.bm25_expanded if c.expand else lists.bm25
    if c.dense:
        rankings["dense"] = lists.dense_expanded if c.expand_dense else lists.dense
        if c.split:
            for i, ranking in enumerate(lists.dense_clauses, start=1):
                rankings[f"dense:{i}"] = ranking
                weights[f"dense:{i}"] = c.clause_weight
    if c.examples > 0:
        cited = cited_ranking(lists.examples[: c.example_depth], lists.cited)
        rankings["examples"] = [ScoredChunk(cid, s) for cid, s in cited]
        weights["examples"] = c.examples
    fused = rrf(rankings, k=c.k, weights=weights)
    if c.neighbour > 0:
        fused = neighbour_boost(fused, lists.neighbours, weight=c.neighbour, k=c.k, depth=NEIGHBOUR_DEPTH)
    fused = own_best_first(fused, rankings, k=c.k, weights=weights)  # as the product
    return [cid for cid, _, _ in fused[:30]]


def score(
    judge_ranked: Callable[[Sequence[int]], list[str]],
    judge_score: Callable[[Sequence[list[str]], Sequence[Query]], dict[str, float]],
    lists: Sequence[Lists],
    queries: Sequence[Query],
    c: Config,
) -> dict[str, float]:
    return judge_score([judge_ranked(fuse(x, c)) for x in lists], queries)


def tune(judge: object, lists: Sequence[Lists], queries: Sequence[Query], base: Config) -> Config:
    """The best clause weight / RRF k / dense weight for `base`'s components, on `queries` only."""
    ranked, scorer = judge.ranked, judge.score  # type: ignore[attr-defined]
    best, best_key = base, (-1.0, -1.0)
    clause_grid = (0.25, 0.5, 0.75, 1.0) if base.split else (base.clause_weight,)
    neighbour_grid = (0.25, 0.5, 1.0) if base.neighbour else (0.0,)
    example_grid = (
        list(itertools.product((0.5, 1.0, 1.5, 2.0), (3, 5, 10, 20)))
        if base.examples
        else [(0.0, EXAMPLE_DEPTH)]
    )
    grid = itertools.product((5, 10, 20, 60), (1.0, 1.5, 2.0, 3.0), clause_grid, neighbour_grid, example_grid)
    for k, dw, cw, nw, (ew, ed) in grid:
        c = Config(
            base.name,
            base.expand,
            base.split,
            base.expand_dense,
            base.bm25,
            base.dense,
            k,
            dw,
            cw,
            nw,
            ew,
            ed,
        )
        row = score(ranked, scorer, lists, queries, c)
        key = (round(row["recall@10"], 6), row["mrr@10"])
        if key > best_key:
            best, best_key = c, key
    return best


def ablation(
    kb: KnowledgeBase, judge: object, tune_on: Sequence[Query], held_out: Sequence[Query]
) -> dict[str, object]:
    """Every component on and off, defaults and tuned-on-the-tune-half, on both halves."""
    started = time.monotonic()
    tune_lists, held_lists = collect(kb, tune_on), collect(kb, held_out)
    ranked, scorer = judge.ranked, judge.score  # type: ignore[attr-defined]
    configs = [
        Config("bm25 only", dense=False),
        Config("bm25 + formal terms", expand=True, dense=False),
        Config("dense only", bm25=False),
        Config("dense + clauses", split=True, bm25=False),
        Config("hybrid (before)"),
        Config("hybrid + formal terms", expand=True),
        Config("hybrid + clauses", split=True),
        Config("hybrid + formal terms + clauses", expand=True, split=True),
        Config("hybrid + neighbours", neighbour=NEIGHBOUR_WEIGHT),
        Config(
            "hybrid + formal terms + neighbours (product default)", expand=True, neighbour=NEIGHBOUR_WEIGHT
        ),
        Config(
            "hybrid + formal terms + clauses + neighbours",
            expand=True,
            split=True,
            neighbour=NEIGHBOUR_WEIGHT,
        ),
        Config(
            "product default + answered examples",
            expand=True,
            neighbour=NEIGHBOUR_WEIGHT,
            examples=EXAMPLE_WEIGHT,
        ),
        Config("hybrid + answered examples", examples=EXAMPLE_WEIGHT),
        Config("dense of question + formal terms", expand_dense=True, bm25=False),
        Config("hybrid + formal terms (BM25 and dense)", expand=True, expand_dense=True),
        Config(
            "hybrid + formal terms (BM25 and dense) + clauses", expand=True, expand_dense=True, split=True
        ),
    ]
    rows: dict[str, object] = {}
    for c in configs:
        tuned = tune(judge, tune_lists, tune_on, c) if c.bm25 and c.dense else c
        rows[c.name] = {
            "defaults": {"tune": _r(score(ranked, scorer, tune_lists, tune_on, c)),
                         "held_out": _r(score(ranked, scorer, held_lists, held_out, c))},
            "tuned_on_tune_half": {"k": tuned.k, "dense_weight": tuned.dense_weight,
                                   "clause_weight": tuned.clause_weight, "neighbour_weight": tuned.neighbour,
                                   "examples_weight": tuned.examples, "example_depth": tuned.example_depth,
                                   "held_out": _r(score(ranked, scorer, held_lists, held_out, tuned))},
        }  # fmt: skip
    rows["seconds"] = round(time.monotonic() - started, 1)
    return rows


def _r(row: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in row.items()}


def table(rows: Mapping[str, object]) -> str:
    """A Markdown table of the ablation: held-out recall@5/@10/MRR, defaults and tuned."""
    lines = ["| configuration | held-out r@5 | r@10 | MRR@10 | tune-half r@10 | tuned on tune half: held-out r@10 (k, dense w, clause w, neighbour w, examples w/depth) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in rows.items():
        if not isinstance(row, dict):
            continue
        if "defaults" not in row:  # a BM25-only index variant: no fusion to tune
            h = row["held_out"]
            lines.append(f"| {name} | {h['recall@5']} | {h['recall@10']} | {h['mrr@10']} | "
                         f"{row['tune']['recall@10']} | — |")  # fmt: skip
            continue
        d, t = row["defaults"], row["tuned_on_tune_half"]
        h = d["held_out"]
        lines.append(f"| {name} | {h['recall@5']} | {h['recall@10']} | {h['mrr@10']} | {d['tune']['recall@10']} | "
                     f"{t['held_out']['recall@10']} ({t['k']}, {t['dense_weight']}, {t['clause_weight']}, {t['neighbour_weight']}, {t['examples_weight']}/{t['example_depth']}) |")  # fmt: skip
    return "\n".join(lines)


def without_headers(kbs: object, passages: Sequence[Passage], make_judge: Callable[..., object],
                    tune_on: Sequence[Query], held_out: Sequence[Query]) -> dict[str, object]:  # fmt: skip
    """BM25 over the passages' own text, without the contextual header (document title and
    heading path) the product keyword-indexes with them: what the header contributes to BM25.
    The dense side is unchanged (an article is embedded with its title; see docs/knowledge.md)."""
    kb = kbs.create("lecoqa-no-headers")  # type: ignore[attr-defined]
    by_doc: dict[str, list[Passage]] = {}
    for p in passages:
        by_doc.setdefault(p.doc, []).append(p)
    for doc, items in by_doc.items():
        doc_id = kb.index.upsert_document("bench:" + doc, doc, status="processing")
        zeros = np.zeros((len(items), kb.embedder.dimensions), dtype=np.float32)  # BM25 only
        kb.index.replace_chunks(doc_id, title=items[0].title, content_hash=doc, bytes_=0, pages=0,
                                chunks=[p.chunk for p in items], fts_texts=[p.chunk.text for p in items],
                                vectors=zeros)  # fmt: skip
    judge = make_judge(kb, passages)
    out: dict[str, object] = {}
    for name, subset in (("tune", tune_on), ("held_out", held_out)):
        ranked = [judge.ranked([s.chunk_id for s in kb.index.keyword_search(q.text, 30)]) for q in subset]  # type: ignore[attr-defined]
        out[name] = _r(judge.score(ranked, subset))  # type: ignore[attr-defined]
    return out
