"""The `Reranker` seam: a second stage that re-scores the fused candidates (query, passage) pairs.

A cross-encoder reads the question and the passage together, which is what closes the gap between
everyday words and a statute's; none is bundled (no torch-free Chinese reranker ships inside a
package), so the default is no reranking. `LlamaRankReranker` runs a reranker GGUF (e.g.
bge-reranker-v2-m3) with llama.cpp's rank pooling when one is installed (`BENDI_KB_RERANKER`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from bendi.core.errors import UserInputError

RERANK_DEPTH = 30  # fused candidates the reranker reads; the rest keep their fused order below them
MAX_PASSAGE_CHARS = 1200  # a statute article fits; keeps one pair under the reranker's context


class Reranker(Protocol):
    """Scores each passage's relevance to the query; higher is better, scale is the model's own."""

    @property
    def name(self) -> str: ...

    def scores(self, query: str, passages: Sequence[str]) -> list[float]: ...


def rerank_order(reranker: Reranker, query: str, passages: Sequence[str]) -> list[int]:
    """Indices of `passages` best first by the reranker's scores (ties keep the fused order)."""
    if not passages:
        return []
    scores = reranker.scores(query, [p[:MAX_PASSAGE_CHARS] for p in passages])
    if len(scores) != len(passages):
        raise ValueError(
            f"reranker {reranker.name} returned {len(scores)} scores for {len(passages)} passages"
        )
    return sorted(range(len(passages)), key=lambda i: (-scores[i], i))


class LlamaRankReranker:
    """A cross-encoder GGUF (bge-reranker family) through llama.cpp's RANK pooling: each pair is
    tokenized as llama-server's /rerank does, BOS query EOS SEP passage EOS, and the classifier
    head's one output is the score. One native context, used by one thread at a time."""

    def __init__(self, model_path: Path, *, threads: int = 2, context_tokens: int = 1024) -> None:
        if not model_path.is_file():
            raise UserInputError(f"The reranker model {model_path} does not exist.")
        import llama_cpp

        self._lib = llama_cpp
        self._path = model_path
        self._llm: Any = llama_cpp.Llama(
            model_path=str(model_path), embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_RANK,
            n_ctx=context_tokens, n_batch=context_tokens, n_ubatch=context_tokens, n_threads=threads,
            verbose=False,
        )  # fmt: skip
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"gguf-rerank:{self._path.name}"

    def _pair_tokens(self, query: str, passage: str) -> list[int]:
        llm = self._llm
        sep = int(llm._model.token_sep())  # noqa: SLF001 - llama-cpp-python has no public accessor for SEP
        eos = llm.token_eos()
        q = llm.tokenize(query.encode("utf-8"), add_bos=True, special=False)
        p = llm.tokenize(passage.encode("utf-8"), add_bos=False, special=False)
        room = llm.n_batch - len(q) - 3
        return [*q, eos, sep if sep >= 0 else eos, *p[: max(0, room)], eos]

    def scores(self, query: str, passages: Sequence[str]) -> list[float]:
        llm = self._llm
        out: list[float] = []
        with self._lock:
            for passage in passages:  # one pair per decode: simple, and pairs are short
                tokens = self._pair_tokens(query, passage)
                llm._batch.reset()  # noqa: SLF001 - same calls as Llama.embed, which cannot take tokens
                llm._batch.add_sequence(tokens, 0, True)  # noqa: SLF001
                llm._ctx.kv_cache_clear()  # noqa: SLF001
                llm._ctx.decode(llm._batch)  # noqa: SLF001
                out.append(float(self._lib.llama_get_embeddings_seq(llm._ctx.ctx, 0)[0]))  # noqa: SLF001
        return out


def load_reranker(spec: str, *, threads: int = 2) -> Reranker | None:
    """The reranker named by settings (`BENDI_KB_RERANKER`): "" for none, or a GGUF file path."""
    if not spec.strip():
        return None
    path = Path(spec).expanduser()
    if path.suffix.lower() != ".gguf":
        raise UserInputError(
            f"BENDI_KB_RERANKER must be the path of a reranker .gguf file (e.g. bge-reranker-v2-m3), not {spec!r}."
        )
    return LlamaRankReranker(path, threads=threads)
