"""Knowledge bases on disk: create, open, list and delete them; each wraps its index and embedder."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bendi.core.errors import AlreadyExistsError, NotFoundError, UserInputError
from bendi.core.paths import DataPaths
from bendi.knowledge.embedding import CachedEmbedder, Embedder
from bendi.knowledge.index import SQLiteIndex
from bendi.knowledge.records import DocumentRecord
from bendi.knowledge.search import Mode, SearchResult, search

INDEX_FILE = "index.sqlite3"
EmbedderFactory = Callable[[str], Embedder]


@dataclass(frozen=True)
class KnowledgeBaseInfo:
    name: str
    description: str
    documents: int
    chunks: int
    embedding_model: str
    created_at: float

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "documents": self.documents,
                "chunks": self.chunks, "embedding_model": self.embedding_model, "created_at": self.created_at}  # fmt: skip


class KnowledgeBase:
    def __init__(
        self, name: str, directory: Path, index: SQLiteIndex, embedder: Callable[[], Embedder]
    ) -> None:
        self.name = name
        self.directory = directory
        self.index = index
        self._embedder_factory = embedder
        self._embedder: Embedder | None = None
        self.write_lock = threading.Lock()  # one ingestion at a time per base; searches never wait on it
        # Runs each hybrid query's BM25 half while the calling thread embeds the query.
        self._searcher: ThreadPoolExecutor | None = None
        self._searcher_lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._embedder_factory()
        return self._embedder

    @property
    def uploads(self) -> Path:
        return self.directory / "uploads"

    @property
    def embedding_model(self) -> str:
        return self.index.get_meta("embedding_model") or ""

    def info(self) -> KnowledgeBaseInfo:
        docs, chunks = self.index.stats()
        return KnowledgeBaseInfo(self.name, self.index.get_meta("description") or "", docs, chunks,
                                 self.embedding_model, float(self.index.get_meta("created_at") or 0))  # fmt: skip

    def documents(self) -> list[DocumentRecord]:
        return self.index.documents()

    def find_document(self, ref: str) -> DocumentRecord:
        """A document by id or by its file as added (exact, then unique suffix)."""
        docs = self.documents()
        if ref.isdigit():
            for doc in docs:
                if doc.id == int(ref):
                    return doc
        exact = [d for d in docs if d.file == ref]
        matches = exact or [d for d in docs if d.file.endswith("/" + ref) or d.file.endswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFoundError(
                f"No document {ref!r} in knowledge base {self.name}; see `bendi kb docs {self.name}`."
            )
        raise UserInputError(f"{ref!r} matches {len(matches)} documents in {self.name}; give its id instead.")

    def delete_document(self, doc_id: int) -> None:
        stored = self.index.stored_path(doc_id)
        with self.write_lock:
            self.index.delete_document(doc_id)
        if stored:
            Path(stored).unlink(missing_ok=True)

    def search(self, query: str, *, top_k: int = 5, mode: Mode = "hybrid", document_ids: Sequence[int] | None = None,
               tags: Sequence[str] | None = None) -> SearchResult:  # fmt: skip
        if not query.strip():
            raise UserInputError("The search query is empty.")
        if not 1 <= top_k <= 100:
            raise UserInputError(f"top_k must be between 1 and 100, not {top_k}.")
        doc_ids: list[int] | None = list(document_ids) if document_ids else None
        if tags:
            tagged = set(self.index.doc_ids_with_tags(tags))
            doc_ids = sorted(tagged if doc_ids is None else tagged & set(doc_ids))
        if doc_ids is not None and not doc_ids:
            return SearchResult([], 0.0, 0.0)
        return search(self.index, self.embedder, query, top_k=top_k, mode=mode, doc_ids=doc_ids,
                      executor=self._executor())  # fmt: skip

    def _executor(self) -> ThreadPoolExecutor:
        with self._searcher_lock:
            if self._searcher is None:
                self._searcher = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"kb-{self.name}")
            return self._searcher

    def close(self) -> None:
        with self._searcher_lock:
            searcher, self._searcher = self._searcher, None
        if searcher is not None:
            searcher.shutdown(wait=True)
        self.index.close()


class KnowledgeBases:
    """All knowledge bases under BENDI_HOME/knowledge, one directory (one SQLite file) each."""

    def __init__(self, paths: DataPaths, embedding_model: str, make_embedder: EmbedderFactory) -> None:
        self._paths = paths
        self._default_model = embedding_model
        self._make_embedder = make_embedder
        self._open: dict[str, KnowledgeBase] = {}
        self._embedders: dict[str, Embedder] = {}
        self._lock = threading.Lock()

    def _embedder(self, model: str) -> Embedder:
        with self._lock:
            if model not in self._embedders:
                inner = self._make_embedder(model)
                self._embedders[model] = CachedEmbedder(inner, self._paths.cache / "embeddings.sqlite3")
            return self._embedders[model]

    def names(self) -> list[str]:
        root = self._paths.knowledge
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / INDEX_FILE).is_file())

    def create(self, name: str, description: str = "", embedding_model: str | None = None) -> KnowledgeBase:
        directory = self._paths.knowledge_base_dir(name)
        if (directory / INDEX_FILE).exists():
            raise AlreadyExistsError(
                f"A knowledge base named {name} exists already; pick another name or add to it."
            )
        directory.mkdir(parents=True, exist_ok=True)
        model = embedding_model or self._default_model
        index = SQLiteIndex(directory / INDEX_FILE)
        index.set_meta({"name": name, "description": description, "embedding_model": model,
                        "created_at": repr(time.time())})  # fmt: skip
        index.close()
        return self.get(name)

    def get(self, name: str) -> KnowledgeBase:
        directory = self._paths.knowledge_base_dir(name)
        with self._lock:
            if name in self._open:
                return self._open[name]
        if not (directory / INDEX_FILE).is_file():
            raise NotFoundError(
                f"There is no knowledge base named {name}. Create it with `bendi kb create {name}`."
            )
        index = SQLiteIndex(directory / INDEX_FILE)
        model = index.get_meta("embedding_model") or self._default_model
        kb = KnowledgeBase(name, directory, index, lambda: self._embedder(model))
        with self._lock:
            return self._open.setdefault(name, kb)

    def list(self) -> list[KnowledgeBaseInfo]:
        return [self.get(name).info() for name in self.names()]

    def delete(self, name: str) -> None:
        kb = self.get(name)
        with kb.write_lock:
            kb.close()
            with self._lock:
                self._open.pop(name, None)
            shutil.rmtree(kb.directory)

    def close(self) -> None:
        with self._lock:
            for kb in self._open.values():
                kb.close()
            self._open.clear()
