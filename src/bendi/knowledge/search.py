"""Hybrid retrieval: BM25 over jieba tokens and dense vectors, fused by reciprocal rank (RRF)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from typing import Literal

from bendi.knowledge.embedding import Embedder
from bendi.knowledge.index import IndexBackend, ScoredChunk
from bendi.knowledge.records import Hit

Mode = Literal["hybrid", "bm25", "dense"]
CANDIDATES = 50
# Weighted RRF, score = sum of weight / (RRF_K + rank). Cormack et al.'s k=60 flattens the top
# ranks; k=5 with dense counting 1.5x was best on half of the LeCoQA questions (grid k 5..60 x
# dense weight 0.5..6, benchmarks/bench_kb_retrieval.py) and is reported on the other half.
RRF_K = 5
WEIGHTS: Mapping[str, float] = {"bm25": 1.0, "dense": 1.5}


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
    weights: Mapping[str, float] = WEIGHTS,
    rrf_k: int = RRF_K,
    executor: Executor | None = None,
) -> SearchResult:
    """`executor`, when given, runs the BM25 query while this thread embeds the query: SQLite and
    the embedder's native code both release the GIL, so a hybrid query costs max(), not sum()."""
    pool = max(candidates, top_k)
    keyword: list[ScoredChunk] = []
    pending: Future[list[ScoredChunk]] | None = None
    if mode == "hybrid" and executor is not None:
        pending = executor.submit(index.keyword_search, query, pool, doc_ids)
    elif mode in ("hybrid", "bm25"):
        keyword = index.keyword_search(query, pool, doc_ids)
    dense: list[ScoredChunk] = []
    if mode in ("hybrid", "dense"):
        vector = embedder.embed([query], kind="query")[0]
        dense = index.vector_search(vector, pool, doc_ids)
    if pending is not None:
        keyword = pending.result()
    best_similarity = dense[0].score if dense else 0.0
    best_bm25 = keyword[0].score if keyword else 0.0
    if mode == "bm25":
        chosen = keyword[:top_k]
        hits = index.hits(chosen)
        return SearchResult(
            [replace(h, ranks={"bm25": i + 1}) for i, h in enumerate(hits)], best_similarity, best_bm25
        )
    if mode == "dense":
        hits = index.hits(dense[:top_k])
        return SearchResult(
            [replace(h, ranks={"dense": i + 1}) for i, h in enumerate(hits)], best_similarity, best_bm25
        )
    fused = rrf({"bm25": keyword, "dense": dense}, k=rrf_k, weights=weights)[:top_k]
    hits = index.hits([ScoredChunk(cid, score) for cid, score, _ in fused])
    rank_of = {cid: ranks for cid, _, ranks in fused}
    return SearchResult([replace(h, ranks=rank_of[h.chunk_id]) for h in hits], best_similarity, best_bm25)
