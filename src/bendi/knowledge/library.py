"""Knowledge bases on disk: create, open, list and delete them; each wraps its index and embedder."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bendi.access.scope import KbScope
from bendi.core.errors import AlreadyExistsError, InvalidNameError, NotFoundError, UserInputError
from bendi.core.names import ascii_identifier, display_name, name_key, normalize
from bendi.core.paths import MAX_NAME_CHARS, DataPaths, safe_component
from bendi.knowledge.embedding import CachedEmbedder, Embedder
from bendi.knowledge.examples import Example, ExampleCitation, StoredExample
from bendi.knowledge.index import SQLiteIndex
from bendi.knowledge.records import DocumentRecord
from bendi.knowledge.rerank import Reranker
from bendi.knowledge.search import Mode, SearchResult, plan_query, search

INDEX_FILE = "index.sqlite3"
EmbedderFactory = Callable[[str], Embedder]


@dataclass(frozen=True)
class KnowledgeBaseInfo:
    name: str  # the ASCII identifier used in paths and URLs
    description: str
    documents: int
    chunks: int
    embedding_model: str
    created_at: float
    display_name: str  # the name as given (any script); the identifier for bases made before names

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "display_name": self.display_name, "description": self.description,
                "documents": self.documents, "chunks": self.chunks, "embedding_model": self.embedding_model,
                "created_at": self.created_at}  # fmt: skip


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
        # Second stage and query rewriting (settings kb_reranker, kb_query_rewrite), set by KnowledgeBases.
        self.reranker: Reranker | None = None
        self.query_rewrite = False

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

    @property
    def display_name(self) -> str:
        """The name as given; bases made before display names existed show their identifier."""
        return self.index.get_meta("display_name") or self.name

    def info(self) -> KnowledgeBaseInfo:
        docs, chunks = self.index.stats()
        return KnowledgeBaseInfo(self.name, self.index.get_meta("description") or "", docs, chunks,
                                 self.embedding_model, float(self.index.get_meta("created_at") or 0),
                                 self.display_name)  # fmt: skip

    def documents(self) -> list[DocumentRecord]:
        return self.index.documents()

    def find_document(self, ref: str, docs: Sequence[DocumentRecord] | None = None) -> DocumentRecord:
        """A document by id or by its file as added (exact, then unique suffix), among `docs`
        (default: the base's documents now)."""
        docs = self.documents() if docs is None else docs
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
                f"No document {ref!r} in knowledge base {self.display_name}; see `bendi kb docs {self.name}`."
            )
        raise UserInputError(
            f"{ref!r} matches {len(matches)} documents in {self.display_name}; give its id instead."
        )

    def delete_document(self, doc_id: int) -> None:
        stored = self.index.stored_path(doc_id)
        with self.write_lock:
            self.index.delete_document(doc_id)
        if stored:
            Path(stored).unlink(missing_ok=True)

    # answered example questions (examples.py) -------------------------------------------------
    def add_examples(self, examples: Sequence[Example]) -> int:
        """Store examples, each citation checked against the documents now in the base: a document,
        article or quote that is not there fails the whole import, naming the example."""
        docs = self.documents()
        rows = []
        for n, example in enumerate(examples, start=1):
            where = f"Example {n} ({example.question[:30]})"
            rows.append((example.question, [self._citation_row(c, docs, where) for c in example.citations]))
        if not rows:
            return 0
        vectors = self.embedder.embed([q for q, _ in rows], kind="query")
        with self.write_lock:
            return self.index.put_examples(
                [(q, vector, citations) for (q, citations), vector in zip(rows, vectors, strict=True)]
            )

    def _citation_row(
        self, citation: ExampleCitation, docs: Sequence[DocumentRecord], where: str
    ) -> tuple[int, str | None, str | None]:
        try:
            doc = self.find_document(citation.document, docs)
        except NotFoundError as exc:
            raise NotFoundError(f"{where}: {exc.message}") from exc
        except UserInputError as exc:
            raise UserInputError(f"{where}: {exc.message}") from exc
        row = (doc.id, citation.article, citation.quote)
        if not self.index.citation_found(*row):
            what = citation.article or f"passage starting {citation.quote[:20]!r}"  # type: ignore[index]
            raise NotFoundError(f"{where}: {doc.file} has no {what}.")
        return row

    def examples(self, offset: int = 0, limit: int | None = None) -> tuple[int, list[StoredExample]]:
        """(how many examples the base holds, those from `offset` on, at most `limit`)."""
        files = {d.id: d.file for d in self.documents()}
        total, rows = self.index.examples(offset, limit)
        return total, [
            StoredExample(
                i, q, tuple(ExampleCitation(files.get(d, str(d)), a, quote) for d, a, quote in cites), t
            )
            for i, q, t, cites in rows
        ]

    def delete_example(self, example_id: int) -> None:
        with self.write_lock:
            self.index.delete_example(example_id)

    def search(self, query: str, *, top_k: int = 5, mode: Mode = "hybrid", document_ids: Sequence[int] | None = None,
               tags: Sequence[str] | None = None, rewrites: Sequence[str] = ()) -> SearchResult:  # fmt: skip
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
                      executor=self._executor(), plan=plan_query(query, rewrites=rewrites),
                      reranker=self.reranker)  # fmt: skip

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
    """All knowledge bases under BENDI_HOME/knowledge, one directory (one SQLite file) each.

    A base is found by its identifier or its display name, and only inside the caller's KbScope: one
    the scope does not allow raises the very NotFoundError of one that does not exist.
    """

    def __init__(self, paths: DataPaths, embedding_model: str, make_embedder: EmbedderFactory, *,
                 reranker: Callable[[], Reranker | None] | None = None, query_rewrite: bool = False) -> None:  # fmt: skip
        self._paths = paths
        self._make_reranker = reranker
        self._reranker: Reranker | None = None
        self._query_rewrite = query_rewrite
        self._default_model = embedding_model
        self._make_embedder = make_embedder
        self._open: dict[str, KnowledgeBase] = {}
        self._embedders: dict[str, Embedder] = {}
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()  # one create at a time: names are checked, then taken

    def _embedder(self, model: str) -> Embedder:
        with self._lock:
            if model not in self._embedders:
                inner = self._make_embedder(model)
                self._embedders[model] = CachedEmbedder(inner, self._paths.cache / "embeddings.sqlite3")
            return self._embedders[model]

    def _shared_reranker(self) -> Reranker | None:
        """One reranker for every base (it is a model, loaded once), made on the first open."""
        with self._lock:
            if self._make_reranker is not None:
                self._reranker, self._make_reranker = self._make_reranker(), None
            return self._reranker

    def _ids(self) -> list[str]:
        """Every base on disk, whoever may see it: for resolving names and keeping them unique only."""
        root = self._paths.knowledge
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if _is_identifier(p.name) and (p / INDEX_FILE).is_file())

    def _open_base(self, kb_id: str) -> KnowledgeBase | None:
        directory = self._paths.knowledge_base_dir(kb_id)
        with self._lock:
            if kb_id in self._open:
                return self._open[kb_id]
        if not (directory / INDEX_FILE).is_file():
            return None
        index = SQLiteIndex(directory / INDEX_FILE)
        model = index.get_meta("embedding_model") or self._default_model
        kb = KnowledgeBase(kb_id, directory, index, lambda: self._embedder(model))
        kb.reranker = self._shared_reranker()
        kb.query_rewrite = self._query_rewrite
        with self._lock:
            return self._open.setdefault(kb_id, kb)

    def _resolve(self, ref: str) -> str | None:
        """The identifier `ref` names: an identifier first, else the display name it equals exactly."""
        wanted = normalize(ref)
        ids = self._ids()
        if wanted in ids:
            return wanted
        for kb_id in ids:
            kb = self._open_base(kb_id)
            if kb is not None and kb.display_name == wanted:
                return kb_id
        return None

    def _lookup(self, ref: str, scope: KbScope) -> KnowledgeBase:
        """The base `ref` names if `scope` allows it; one it does not allow reads as missing."""
        kb_id = self._resolve(ref)
        kb = self._open_base(kb_id) if kb_id is not None and scope.allows(kb_id) else None
        if kb is None:
            raise NotFoundError(
                f"There is no knowledge base named {ref}. Create it with `bendi kb create {ref}`."
            )
        return kb

    def names(self, scope: KbScope) -> list[str]:
        """The identifiers of the bases `scope` allows, sorted."""
        return [kb_id for kb_id in self._ids() if scope.allows(kb_id)]

    def create(self, name: str, description: str = "", embedding_model: str | None = None) -> KnowledgeBase:
        """A new empty base named `name` (any script); its identifier is derived from it.

        Who may create is decided by the caller's policy, so no scope is taken here.
        """
        display = display_name(name, what="knowledge-base name", max_chars=MAX_NAME_CHARS)
        if "/" in display or "\\" in display:
            raise InvalidNameError(
                f"The knowledge-base name {display!r} contains '/' or '\\'. Knowledge-base names are used in "
                "web addresses and commands, so leave those characters out."
            )
        with self._create_lock:
            ids = self._ids()
            key = name_key(display)
            for kb_id in ids:
                kb = self._open_base(kb_id)
                if key in (name_key(kb_id), name_key(kb.display_name if kb else kb_id)):
                    raise AlreadyExistsError(
                        f"A knowledge base named {display} exists already; pick another name or add to it."
                    )
            kb_id = ascii_identifier(display, taken=ids, prefix="kb")
            directory = self._paths.knowledge_base_dir(kb_id)
            directory.mkdir(parents=True, exist_ok=True)
            model = embedding_model or self._default_model
            index = SQLiteIndex(directory / INDEX_FILE)
            index.set_meta({"name": kb_id, "display_name": display, "description": description,
                            "embedding_model": model, "created_at": repr(time.time())})  # fmt: skip
            index.close()
        created = self._open_base(kb_id)
        if created is None:
            raise NotFoundError(
                f"The knowledge base {display} vanished while it was being created; try again."
            )
        return created

    def get(self, name: str, scope: KbScope) -> KnowledgeBase:
        """The base whose identifier or display name is `name`, if `scope` allows it (else NotFoundError)."""
        return self._lookup(name, scope)

    def list(self, scope: KbScope) -> list[KnowledgeBaseInfo]:
        infos = []
        for kb_id in self.names(scope):
            kb = self._open_base(kb_id)
            if kb is not None:  # deleted by another process a moment ago
                infos.append(kb.info())
        return infos

    def delete(self, name: str, scope: KbScope) -> None:
        kb = self._lookup(name, scope)
        with kb.write_lock:
            kb.close()
            with self._lock:
                self._open.pop(kb.name, None)
            shutil.rmtree(kb.directory)

    def close(self) -> None:
        with self._lock:
            for kb in self._open.values():
                kb.close()
            self._open.clear()


def _is_identifier(name: str) -> bool:
    """A directory someone put under knowledge/ by hand with an unsafe name is no base; skip it."""
    try:
        safe_component(name)
    except InvalidNameError:
        return False
    return True
