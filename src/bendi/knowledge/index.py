"""The index seam (IndexBackend) and its embedded default: one SQLite file per knowledge base.

SQLite in WAL mode holds documents, chunks, an FTS5 table over jieba-segmented text (BM25) and
the chunk vectors as float32 blobs. Python's sqlite3 here cannot load extensions (sqlite-vec), so
vector search is exact brute force over a numpy matrix cached in memory and rebuilt when the
index's generation counter moves. A document's chunks, FTS rows, vectors and status change in ONE
transaction, which is what makes ingestion crash-safe: kill -9 leaves the old state or the new.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bendi.core.errors import NotFoundError
from bendi.knowledge.examples import QUOTE_PROBE
from bendi.knowledge.records import Chunk, DocStatus, DocumentRecord, Hit
from bendi.knowledge.tokenize import fts_expression, query_terms, segment

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
  id INTEGER PRIMARY KEY, source_key TEXT NOT NULL UNIQUE, file TEXT NOT NULL, title TEXT NOT NULL,
  bytes INTEGER NOT NULL DEFAULT 0, pages INTEGER NOT NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL, error TEXT, content_hash TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '[]',
  stored_path TEXT, added_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
  id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  ordinal INTEGER NOT NULL, text TEXT NOT NULL, page INTEGER, heading TEXT NOT NULL, article TEXT,
  start_char INTEGER NOT NULL, end_char INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(tokens, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE TABLE IF NOT EXISTS examples (
  id INTEGER PRIMARY KEY, question TEXT NOT NULL UNIQUE, vector BLOB NOT NULL, added_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS example_citations (
  example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE, article TEXT, quote TEXT);
CREATE INDEX IF NOT EXISTS example_citations_example ON example_citations(example_id);
"""
# A query term found in more than this share of a large base's chunks is left out of the BM25
# query: its IDF is small, yet its posting list is most of the cost (at 100k law chunks, dropping
# terms in > 10% of chunks cut the FTS5 p95 from 52 to 30 ms and left LeCoQA BM25 hit@10 at 0.579).
COMMON_TERM_SHARE = 0.1
COMMON_TERMS_FROM_CHUNKS = 20_000  # below this, document frequencies are too noisy to judge by
_DOC_COLUMNS = (
    "id, file, title, bytes, pages, chunks, status, error, added_at, updated_at, content_hash, tags"
)


@dataclass(frozen=True)
class ScoredChunk:
    chunk_id: int
    score: float


class IndexBackend(Protocol):
    """What a knowledge base needs from storage. SQLite is the embedded default; PostgreSQL +
    pgvector (tsvector/pg_jieba for BM25) or Qdrant (sparse + dense vectors) fit the same seam."""

    def get_meta(self, key: str) -> str | None: ...
    def documents(self) -> list[DocumentRecord]: ...
    def document(self, doc_id: int) -> DocumentRecord: ...
    def document_by_key(self, source_key: str) -> DocumentRecord | None: ...
    def upsert_document(self, source_key: str, file: str, *, status: DocStatus, stored_path: str | None = None,
                        tags: Sequence[str] = ()) -> int: ...  # fmt: skip
    def set_status(self, doc_id: int, status: DocStatus, error: str | None = None) -> None: ...
    def replace_chunks(self, doc_id: int, *, title: str, content_hash: str, bytes_: int, pages: int,
                       chunks: Sequence[Chunk], fts_texts: Sequence[str], vectors: np.ndarray,
                       status: DocStatus = "indexed") -> None: ...  # fmt: skip
    def delete_document(self, doc_id: int) -> None: ...
    def keyword_search(
        self, query: str, limit: int, doc_ids: Sequence[int] | None = None
    ) -> list[ScoredChunk]: ...
    def vector_search(
        self, vector: np.ndarray, limit: int, doc_ids: Sequence[int] | None = None
    ) -> list[ScoredChunk]: ...
    def hits(self, scored: Sequence[ScoredChunk]) -> list[Hit]: ...
    def sample_chunks(self, count: int) -> list[Hit]: ...
    def neighbours(self, chunk_ids: Sequence[int]) -> dict[int, list[int]]: ...
    def example_vectors(self) -> tuple[np.ndarray, np.ndarray]: ...
    def cited_chunks(
        self, example_ids: Sequence[int], doc_ids: Sequence[int] | None = None
    ) -> dict[int, list[int]]: ...
    def stats(self) -> tuple[int, int]: ...
    def close(self) -> None: ...


class SQLiteIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        # One connection per thread (search runs BM25 on a worker thread next to the query
        # embedding); kept here too so close() can close them all, whichever thread opened them.
        self._connections: dict[int, sqlite3.Connection] = {}
        self._connections_lock = threading.Lock()
        self._matrix_lock = threading.Lock()
        self._terms_lock = threading.Lock()
        self._frequencies: tuple[int, int, dict[str, int]] | None = None  # (gen, chunks, term -> df)
        self._matrix: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None  # (gen, ids, docs, vecs)
        self._example_matrix: tuple[int, np.ndarray, np.ndarray] | None = None  # (gen, ids, vecs)
        self._db().executescript(
            SCHEMA
        )  # executescript commits on its own; IF NOT EXISTS makes it idempotent

    # connections: one per thread (sqlite3 objects are not shared across threads) --------------
    def _db(self) -> sqlite3.Connection:
        thread = threading.get_ident()
        db = self._connections.get(thread)
        if db is None:
            # check_same_thread=False only so close() may close it; each thread still uses its own
            db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
            db.execute("PRAGMA foreign_keys=ON")
            with self._connections_lock:
                self._connections[thread] = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute(
                "INSERT INTO meta(key, value) VALUES ('generation', '1') ON CONFLICT(key) "
                "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = list(self._connections.values()), {}
        for db in connections:
            db.close()

    # metadata -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, values: dict[str, str]) -> None:
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(values.items()))

    def stats(self) -> tuple[int, int]:
        db = self._db()
        docs = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks)

    # documents ------------------------------------------------------------------------------
    @staticmethod
    def _record(row: Sequence[Any]) -> DocumentRecord:
        tags = tuple(json.loads(str(row[11]) or "[]"))
        return DocumentRecord(int(row[0]), str(row[1]), str(row[2]), int(row[3]), int(row[4]), int(row[5]),
                              row[6], row[7], float(row[8]), float(row[9]), str(row[10]), tags)  # fmt: skip

    def documents(self) -> list[DocumentRecord]:
        rows = self._db().execute(f"SELECT {_DOC_COLUMNS} FROM documents ORDER BY id").fetchall()
        return [self._record(r) for r in rows]

    def document(self, doc_id: int) -> DocumentRecord:
        row = self._db().execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no document with id {doc_id} in this knowledge base.")
        return self._record(row)

    def document_by_key(self, source_key: str) -> DocumentRecord | None:
        row = (
            self._db()
            .execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE source_key = ?", (source_key,))
            .fetchone()
        )
        return None if row is None else self._record(row)

    def stored_path(self, doc_id: int) -> str | None:
        row = self._db().execute("SELECT stored_path FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def pending_documents(self) -> list[int]:
        """Queued or interrupted documents (a crash mid-ingest leaves 'processing'): to be redone."""
        rows = self._db().execute(
            "SELECT id FROM documents WHERE status IN ('queued', 'processing') AND stored_path IS NOT NULL ORDER BY id"
        )
        return [int(r[0]) for r in rows]

    def upsert_document(self, source_key: str, file: str, *, status: DocStatus, stored_path: str | None = None,
                        tags: Sequence[str] = ()) -> int:  # fmt: skip
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO documents (source_key, file, title, status, stored_path, tags, added_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source_key) DO UPDATE SET file = excluded.file, "
                "status = excluded.status, stored_path = COALESCE(excluded.stored_path, stored_path), "
                "tags = excluded.tags, error = NULL, updated_at = excluded.updated_at",
                (
                    source_key,
                    file,
                    file.rsplit("/", 1)[-1],
                    status,
                    stored_path,
                    json.dumps(list(tags)),
                    now,
                    now,
                ),
            )
            row = db.execute("SELECT id FROM documents WHERE source_key = ?", (source_key,)).fetchone()
        return int(row[0])

    def set_status(self, doc_id: int, status: DocStatus, error: str | None = None) -> None:
        with self._write() as db:
            db.execute("UPDATE documents SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                       (status, error, time.time(), doc_id))  # fmt: skip

    def replace_chunks(self, doc_id: int, *, title: str, content_hash: str, bytes_: int, pages: int,
                       chunks: Sequence[Chunk], fts_texts: Sequence[str], vectors: np.ndarray,
                       status: DocStatus = "indexed") -> None:  # fmt: skip
        tokens = [segment(t) for t in fts_texts]  # outside the write lock: jieba is the slow part
        with self._write() as db:
            old = [r[0] for r in db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
            db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in old])
            db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
            for chunk, token_text, vector in zip(chunks, tokens, vectors, strict=True):
                cursor = db.execute(
                    "INSERT INTO chunks (doc_id, ordinal, text, page, heading, article, start_char, end_char, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc_id, chunk.ordinal, chunk.text, chunk.page, chunk.heading, chunk.article,
                     chunk.start_char, chunk.end_char, np.asarray(vector, dtype=np.float32).tobytes()),
                )  # fmt: skip
                db.execute(
                    "INSERT INTO chunks_fts (rowid, tokens) VALUES (?, ?)", (cursor.lastrowid, token_text)
                )
            db.execute(
                "UPDATE documents SET title = ?, content_hash = ?, bytes = ?, pages = ?, chunks = ?, status = ?, "
                "error = NULL, updated_at = ? WHERE id = ?",
                (title, content_hash, bytes_, pages, len(chunks), status, time.time(), doc_id),
            )

    def delete_document(self, doc_id: int) -> None:
        with self._write() as db:
            old = [r[0] for r in db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
            db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in old])
            db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
            if db.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount == 0:
                raise NotFoundError(f"There is no document with id {doc_id} in this knowledge base.")

    # search ---------------------------------------------------------------------------------
    def keyword_search(
        self, query: str, limit: int, doc_ids: Sequence[int] | None = None
    ) -> list[ScoredChunk]:
        terms = self._informative(query_terms(query))
        return self._match_search(fts_expression(terms), limit, doc_ids) if terms else []

    def _informative(self, terms: list[str]) -> list[str]:
        """The terms without those in more than COMMON_TERM_SHARE of the chunks (large bases only);
        a query made only of such terms keeps its three rarest. Frequencies are cached per generation."""
        if not terms:
            return terms
        generation = self._generation()
        with self._terms_lock:
            if self._frequencies is None or self._frequencies[0] != generation:
                count = int(self._db().execute("SELECT count(*) FROM chunks").fetchone()[0])
                self._frequencies = (generation, count, {})
            _, count, known = self._frequencies
        if count < COMMON_TERMS_FROM_CHUNKS:
            return terms
        missing = [t for t in terms if t not in known]
        if missing:
            marks = ",".join("?" * len(missing))
            found = dict(
                self._db().execute(f"SELECT term, doc FROM chunks_vocab WHERE term IN ({marks})", missing)
            )
            with self._terms_lock:
                if len(known) > 100_000:
                    known.clear()
                known.update({t: int(found.get(t, 0)) for t in missing})
        frequency = {t: known.get(t, 0) for t in terms}
        kept = [t for t in terms if frequency[t] <= COMMON_TERM_SHARE * count]
        return kept or sorted(terms, key=frequency.__getitem__)[:3]

    def _match_search(self, match: str, limit: int, doc_ids: Sequence[int] | None) -> list[ScoredChunk]:
        sql = "SELECT f.rowid, bm25(chunks_fts) AS s FROM chunks_fts f"
        args: list[object] = [match]
        if doc_ids is not None:
            marks = ",".join("?" * len(doc_ids))
            sql += f" JOIN chunks c ON c.id = f.rowid WHERE chunks_fts MATCH ? AND c.doc_id IN ({marks})"
            args += list(doc_ids)
        else:
            sql += " WHERE chunks_fts MATCH ?"
        sql += " ORDER BY s LIMIT ?"
        rows = self._db().execute(sql, (*args, limit)).fetchall()
        return [ScoredChunk(int(r[0]), -float(r[1])) for r in rows]  # bm25() is negative: lower is better

    def _generation(self) -> int:
        """Bumped by every write transaction (any process): what the in-memory caches are keyed by."""
        return int(self.get_meta("generation") or 0)

    def _vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        generation = self._generation()
        with self._matrix_lock:
            if self._matrix is None or self._matrix[0] != generation:
                rows = self._db().execute("SELECT id, doc_id, vector FROM chunks ORDER BY id").fetchall()
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                docs = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
                vecs = (np.vstack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
                        if rows else np.zeros((0, 1), dtype=np.float32))  # fmt: skip
                self._matrix = (generation, ids, docs, vecs)
            return self._matrix[1], self._matrix[2], self._matrix[3]

    def vector_search(
        self, vector: np.ndarray, limit: int, doc_ids: Sequence[int] | None = None
    ) -> list[ScoredChunk]:
        ids, docs, vecs = self._vectors()
        if len(ids) == 0:
            return []
        scores = vecs @ np.asarray(vector, dtype=np.float32)
        if doc_ids is not None:
            scores = np.where(np.isin(docs, np.asarray(list(doc_ids), dtype=np.int64)), scores, -np.inf)
        k = min(limit, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [ScoredChunk(int(ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def neighbours(self, chunk_ids: Sequence[int]) -> dict[int, list[int]]:
        """Each chunk's previous and next chunk in its own document (adjacent articles)."""
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = self._db().execute(
            "SELECT a.id, b.id FROM chunks a JOIN chunks b ON b.doc_id = a.doc_id "
            f"AND b.ordinal IN (a.ordinal - 1, a.ordinal + 1) WHERE a.id IN ({marks})",
            list(chunk_ids),
        )
        out: dict[int, list[int]] = {}
        for a, b in rows:
            out.setdefault(int(a), []).append(int(b))
        return out

    def hits(self, scored: Sequence[ScoredChunk]) -> list[Hit]:
        if not scored:
            return []
        marks = ",".join("?" * len(scored))
        rows = (
            self._db()
            .execute(
                "SELECT c.id, c.doc_id, d.file, c.page, c.article, c.heading, c.text FROM chunks c "
                f"JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
                [s.chunk_id for s in scored],
            )
            .fetchall()
        )
        by_id = {int(r[0]): r for r in rows}
        return [
            Hit(s.chunk_id, int(r[1]), str(r[2]), r[3], r[4], str(r[5]), s.score, str(r[6]))
            for s in scored
            if (r := by_id.get(s.chunk_id)) is not None
        ]

    def sample_chunks(self, count: int) -> list[Hit]:
        """Up to `count` passages spread evenly over the base, articles (第X条) first: material for
        writing tuning data (tune/kb_pairs.py)."""
        rows = (
            self._db().execute("SELECT id FROM chunks ORDER BY (article IS NULL), doc_id, ordinal").fetchall()
        )
        ids = [int(row[0]) for row in rows]
        step = max(1, len(ids) // max(1, count))
        return self.hits([ScoredChunk(chunk_id, 0.0) for chunk_id in ids[::step][:count]])

    # answered example questions (examples.py) -------------------------------------------------
    def put_examples(
        self, rows: Sequence[tuple[str, np.ndarray, Sequence[tuple[int, str | None, str | None]]]]
    ) -> int:
        """Store (question, vector, [(doc_id, article, quote)]) rows in one transaction; a question
        already stored gets the new citations instead of its old ones."""
        with self._write() as db:
            for question, vector, citations in rows:
                blob = np.asarray(vector, dtype=np.float32).tobytes()
                example_id = db.execute(
                    "INSERT INTO examples (question, vector, added_at) VALUES (?, ?, ?) ON CONFLICT(question) "
                    "DO UPDATE SET vector = excluded.vector, added_at = excluded.added_at RETURNING id",
                    (question, blob, time.time()),
                ).fetchone()[0]
                db.execute("DELETE FROM example_citations WHERE example_id = ?", (example_id,))
                db.executemany(
                    "INSERT INTO example_citations (example_id, doc_id, article, quote) VALUES (?, ?, ?, ?)",
                    [(example_id, *citation) for citation in citations],
                )
        return len(rows)

    def examples(
        self, offset: int = 0, limit: int | None = None
    ) -> tuple[int, list[tuple[int, str, float, list[tuple[int, str | None, str | None]]]]]:
        """(how many there are, the page of them from `offset` in id order, with their citations)."""
        db = self._db()
        total = int(db.execute("SELECT count(*) FROM examples").fetchone()[0])
        rows = db.execute(
            "SELECT id, question, added_at FROM examples ORDER BY id LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        ).fetchall()
        cites: dict[int, list[tuple[int, str | None, str | None]]] = {}
        if rows:
            marks = ",".join("?" * len(rows))
            for example_id, doc_id, article, quote in db.execute(
                "SELECT example_id, doc_id, article, quote FROM example_citations "
                f"WHERE example_id IN ({marks}) ORDER BY rowid",
                [r[0] for r in rows],
            ):
                cites.setdefault(int(example_id), []).append((int(doc_id), article, quote))
        return total, [(int(i), str(q), float(t), cites.get(int(i), [])) for i, q, t in rows]

    def delete_example(self, example_id: int) -> None:
        with self._write() as db:
            if db.execute("DELETE FROM examples WHERE id = ?", (example_id,)).rowcount == 0:
                raise NotFoundError(
                    f"There is no example question with id {example_id} in this knowledge base."
                )

    def example_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the example questions, cached per generation like the chunk matrix."""
        generation = self._generation()
        with self._matrix_lock:
            if self._example_matrix is None or self._example_matrix[0] != generation:
                rows = self._db().execute("SELECT id, vector FROM examples ORDER BY id").fetchall()
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                vecs = (np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
                        if rows else np.zeros((0, 1), dtype=np.float32))  # fmt: skip
                self._example_matrix = (generation, ids, vecs)
            return self._example_matrix[1], self._example_matrix[2]

    def citation_found(self, doc_id: int, article: str | None, quote: str | None) -> bool:
        """Whether the document now has the cited article, or a chunk holding the quote's start."""
        row = (
            self._db()
            .execute(
                "SELECT 1 FROM chunks WHERE doc_id = ? AND (article = ? OR instr(text, substr(?, 1, ?)) > 0) LIMIT 1",
                (doc_id, article, quote, QUOTE_PROBE),
            )
            .fetchone()
        )
        return row is not None

    def cited_chunks(
        self, example_ids: Sequence[int], doc_ids: Sequence[int] | None = None
    ) -> dict[int, list[int]]:
        """Each example's cited chunks as the documents are now: every chunk of a cited article, or
        the chunks holding a quote's first QUOTE_PROBE characters."""
        if not example_ids:
            return {}
        marks = ",".join("?" * len(example_ids))
        sql = (
            "SELECT t.example_id, c.id FROM example_citations t JOIN chunks c ON c.doc_id = t.doc_id "
            "AND ((t.article IS NOT NULL AND c.article = t.article) "
            f"OR (t.quote IS NOT NULL AND instr(c.text, substr(t.quote, 1, {QUOTE_PROBE})) > 0)) "
            f"WHERE t.example_id IN ({marks})"
        )
        args: list[object] = list(example_ids)
        if doc_ids is not None:
            sql += f" AND c.doc_id IN ({','.join('?' * len(doc_ids))})"
            args += list(doc_ids)
        out: dict[int, list[int]] = {}
        for example_id, chunk_id in self._db().execute(sql + " ORDER BY c.doc_id, c.ordinal", args):
            out.setdefault(int(example_id), []).append(int(chunk_id))
        return out

    def doc_ids_with_tags(self, tags: Sequence[str]) -> list[int]:
        wanted = set(tags)
        return [d.id for d in self.documents() if wanted & set(d.tags)]
