"""Hybrid retrieval: BM25 over jieba tokens and dense vectors, fused by reciprocal rank (RRF).

Everyday questions get a query plan first (rewrite_rules.py, rewrite.py): formal terms added to the
keyword query, optionally the question's clauses and any model rewrites as extra ranked lists; the
document neighbours of the top fused chunks are lifted; the passages that the base's answered
example questions nearest to the query cite are one more list (examples.py); an optional `Reranker` (rerank.py)
re-scores the fused candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from bendi.knowledge.embedding import Embedder
from bendi.knowledge.examples import EXAMPLE_DEPTH, EXAMPLE_WEIGHT, cited_ranking, nearest_examples
from bendi.knowledge.index import IndexBackend, ScoredChunk
from bendi.knowledge.records import Hit
from bendi.knowledge.rerank import RERANK_DEPTH, Reranker, rerank_order
from bendi.knowledge.rewrite_rules import clauses, expansion_terms

Mode = Literal["hybrid", "bm25", "dense"]
CANDIDATES = 50
# Weighted RRF, score = sum of weight / (RRF_K + rank). Cormack et al.'s k=60 flattens the top
# ranks; k=5 with dense counting 1.5x was best on half of the LeCoQA questions (grid k 5..60 x
# dense weight 0.5..6, benchmarks/bench_kb_retrieval.py) and is reported on the other half.
RRF_K = 5
WEIGHTS: Mapping[str, float] = {"bm25": 1.0, "dense": 1.5, "examples": EXAMPLE_WEIGHT}
# Weight of each extra list: a clause's dense ranking, a model rewrite's BM25 and dense rankings.
CLAUSE_WEIGHT = 0.5
# Clause lists are off by default: +0.01 recall@10 on LeCoQA (held-out half, docs/knowledge.md)
# for one more embedded text per clause, and query embedding is most of a query's time.
SPLIT_CLAUSES = False
REWRITE_WEIGHT = 1.0
# Adjacent articles answer together (an article and the exception in the next one): each of the
# top NEIGHBOUR_DEPTH fused chunks lends its document neighbours weight / (k + its rank).
NEIGHBOUR_DEPTH = 5
NEIGHBOUR_WEIGHT = 0.5
# The answer prompt reads the first hits: neighbours fill the places after the plain fusion's first
# NEIGHBOUR_KEEP, never displace them (lifting them above the best hit cost MRR and recall@5).
NEIGHBOUR_KEEP = 3


def neighbour_boost(
    fused: Sequence[tuple[int, float, dict[str, int]]],
    neighbours: Mapping[int, Sequence[int]],
    *,
    weight: float = NEIGHBOUR_WEIGHT,
    k: int = RRF_K,
    depth: int = NEIGHBOUR_DEPTH,
    keep: int = NEIGHBOUR_KEEP,
) -> list[tuple[int, float, dict[str, int]]]:
    """`fused` re-ranked with the neighbours of its top `depth` entries added as one more list; its
    first `keep` entries stay where they are."""
    scores = {cid: score for cid, score, _ in fused}
    ranks = {cid: dict(r) for cid, _, r in fused}
    for rank, (cid, _, _) in enumerate(fused[:depth], start=1):
        for other in neighbours.get(cid, ()):
            scores[other] = scores.get(other, 0.0) + weight / (k + rank)
            ranks.setdefault(other, {}).setdefault("neighbour", rank)
    kept = [cid for cid, _, _ in fused[:keep]]
    rest = sorted((kv for kv in scores.items() if kv[0] not in kept), key=lambda kv: (-kv[1], kv[0]))
    return [(cid, scores[cid], ranks[cid]) for cid in kept] + [
        (cid, score, ranks[cid]) for cid, score in rest
    ]


@dataclass(frozen=True)
class QueryPlan:
    """What one question is searched as: a keyword query and the texts whose vectors are searched,
    each a ranked list of its own in the fusion, with its weight."""

    keyword: str
    dense: tuple[str, ...]
    extra_keyword: tuple[str, ...] = ()  # model rewrites also searched by BM25
    weights: Mapping[str, float] | None = None


def plan_query(
    query: str, *, expand: bool = True, split: bool = SPLIT_CLAUSES, rewrites: Sequence[str] = ()
) -> QueryPlan:
    """The default plan: the question plus the formal terms for its everyday words (BM25), the
    question (dense), with `split` each clause of a multi-clause question too, plus any model
    rewrites (BM25 and dense)."""
    extra = expansion_terms(query) if expand else ""
    parts = clauses(query) if split else []
    rewritten = tuple(r for r in dict.fromkeys(rewrites) if r.strip() and r != query)
    weights = dict(WEIGHTS)
    weights.update({f"dense:{i}": CLAUSE_WEIGHT for i in range(1, len(parts) + 1)})
    for j in range(len(rewritten)):
        weights[f"dense:{len(parts) + 1 + j}"] = REWRITE_WEIGHT
        weights[f"bm25:{j + 1}"] = REWRITE_WEIGHT
    keyword = f"{query} {extra}" if extra else query
    return QueryPlan(keyword, (query, *parts, *rewritten), rewritten, weights)


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    # The best dense cosine similarity among all candidates: what the refusal decision reads.
    best_similarity: float
    best_bm25: float


def rrf(
    rankings: dict[str, Sequence[ScoredChunk]], k: int = RRF_K, weights: Mapping[str, float] | None = None
) -> list[tuple[int, float, dict[str, int]]]:
    fused: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for name, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, item in enumerate(ranking, start=1):
            fused[item.chunk_id] = fused.get(item.chunk_id, 0.0) + weight / (k + rank)
            ranks.setdefault(item.chunk_id, {})[name] = rank
    ordered = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(cid, score, ranks[cid]) for cid, score in ordered]


def search(
    index: IndexBackend,
    embedder: Embedder,
    query: str,
    *,
    top_k: int = 5,
    mode: Mode = "hybrid",
    doc_ids: Sequence[int] | None = None,
    candidates: int = CANDIDATES,
    weights: Mapping[str, float] | None = None,
    rrf_k: int = RRF_K,
    executor: Executor | None = None,
    plan: QueryPlan | None = None,
    reranker: Reranker | None = None,
    neighbour_weight: float = NEIGHBOUR_WEIGHT,
    example_depth: int = EXAMPLE_DEPTH,
) -> SearchResult:
    """`executor`, when given, runs the BM25 queries while this thread embeds the query texts:
    SQLite and the embedder's native code both release the GIL, so a hybrid query costs max(), not
    sum(). `plan` defaults to plan_query(query); `weights` overrides the plan's list weights."""
    plan = plan or plan_query(query)
    fusion_weights = {**(plan.weights or WEIGHTS), **(weights or {})}
    pool = max(candidates, top_k, RERANK_DEPTH if reranker else 0)
    keyword_texts = {"hybrid": [plan.keyword, *plan.extra_keyword], "bm25": [plan.keyword], "dense": []}[mode]

    def keyword_lists() -> list[list[ScoredChunk]]:
        return [index.keyword_search(text, pool, doc_ids) for text in keyword_texts]

    pending: Future[list[list[ScoredChunk]]] | None = None
    keyword: list[list[ScoredChunk]] = []
    if mode == "hybrid" and executor is not None:
        pending = executor.submit(keyword_lists)
    else:
        keyword = keyword_lists()
    dense: list[list[ScoredChunk]] = []
    vectors = None
    if mode in ("hybrid", "dense"):
        texts = plan.dense if mode == "hybrid" else plan.dense[:1]
        vectors = embedder.embed(list(texts), kind="query")  # one batch: one native call
        dense = [index.vector_search(vector, pool, doc_ids) for vector in vectors]
    if pending is not None:
        keyword = pending.result()
    best_similarity = max((d[0].score for d in dense if d), default=0.0)
    best_bm25 = keyword[0][0].score if keyword and keyword[0] else 0.0
    if mode != "hybrid":
        only = (keyword or dense)[0][: max(top_k, RERANK_DEPTH if reranker else 0)]
        fused: list[tuple[int, float, dict[str, int]]] = [
            (item.chunk_id, item.score, {str(mode): i + 1}) for i, item in enumerate(only)
        ]
    else:
        rankings: dict[str, Sequence[ScoredChunk]] = {}
        for i, ranking in enumerate(keyword):
            rankings["bm25" if i == 0 else f"bm25:{i}"] = ranking
        for i, ranking in enumerate(dense):
            rankings["dense" if i == 0 else f"dense:{i}"] = ranking
        if vectors is not None and example_depth > 0:
            rankings["examples"] = example_list(index, vectors[0], example_depth, doc_ids)
        fused = rrf(rankings, k=rrf_k, weights=fusion_weights)
        if neighbour_weight > 0:
            top = [cid for cid, _, _ in fused[:NEIGHBOUR_DEPTH]]
            fused = neighbour_boost(fused, index.neighbours(top), weight=neighbour_weight, k=rrf_k)
        fused = own_best_first(fused, rankings, k=rrf_k, weights=fusion_weights)
    head = fused[: RERANK_DEPTH if reranker else top_k]
    hits = index.hits([ScoredChunk(cid, score) for cid, score, _ in head])
    rank_of = {cid: ranks for cid, _, ranks in head}
    hits = [replace(h, ranks=dict(rank_of[h.chunk_id])) for h in hits]
    if reranker is not None and hits:
        order = rerank_order(reranker, query, [h.text for h in hits])
        hits = [replace(hits[i], ranks={**hits[i].ranks, "rerank": n + 1}) for n, i in enumerate(order)]
    return SearchResult(hits[:top_k], best_similarity, best_bm25)


def own_best_first(
    fused: Sequence[tuple[int, float, dict[str, int]]],
    rankings: Mapping[str, Sequence[ScoredChunk]],
    *,
    k: int = RRF_K,
    weights: Mapping[str, float] | None = None,
) -> list[tuple[int, float, dict[str, int]]]:
    """`fused` with the question's own best hit (the fusion of every list but the examples') first:
    examples add passages but do not displace it (LeCoQA tune half: MRR@10 0.584 -> 0.591, recall
    unchanged; on held-out questions no example covers, MRR 0.50 -> 0.74). No examples: unchanged."""
    if not rankings.get("examples"):
        return list(fused)
    own = rrf({name: r for name, r in rankings.items() if name != "examples"}, k=k, weights=weights)
    if not own:
        return list(fused)
    best = own[0][0]
    return [e for e in fused if e[0] == best] + [e for e in fused if e[0] != best]


def example_list(
    index: IndexBackend, query_vector: np.ndarray, depth: int, doc_ids: Sequence[int] | None
) -> list[ScoredChunk]:
    """The chunks cited by the example questions nearest to the query (none stored: empty)."""
    ids, vectors = index.example_vectors()
    nearest = nearest_examples(query_vector, ids, vectors, depth=depth)
    if not nearest:
        return []
    cited = index.cited_chunks([example_id for example_id, _ in nearest], doc_ids)
    return [ScoredChunk(cid, score) for cid, score in cited_ranking(nearest, cited)]
