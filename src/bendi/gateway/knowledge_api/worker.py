"""The server's ingestion worker: one background thread and queue, so uploads never block the event loop."""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from bendi.access.scope import KbScope
from bendi.core.errors import BendiError
from bendi.knowledge.ingest import ingest_file
from bendi.knowledge.library import KnowledgeBases
from bendi.knowledge.parsers import is_probably_scan

log = logging.getLogger("bendi.knowledge")


@dataclass(frozen=True)
class _Job:
    kb_name: str
    doc_id: int


class IngestWorker:
    """Ingests for the server itself, so it sees every base (KbScope.everything()): the routes that
    queue a job have already looked the base up in the uploader's scope, and recovery after a crash
    belongs to no caller at all."""

    def __init__(self, knowledge: KnowledgeBases) -> None:
        self._knowledge = knowledge
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        # Scans wait in a queue of their own with a thread of their own: OCR of a 300-page scan takes
        # many minutes, and meanwhile the quick lane goes on indexing every other upload.
        self._scans: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, args=(self._queue,), name="bendi-kb-ingest", daemon=True
        )
        self._scan_thread = threading.Thread(
            target=self._run, args=(self._scans,), name="bendi-kb-ocr", daemon=True
        )
        self._thread.start()
        self._scan_thread.start()
        self._recover()

    def _recover(self) -> None:
        """Documents left queued or half-processed by a previous run (crash, kill -9) are redone."""
        everything = KbScope.everything()
        for name in self._knowledge.names(everything):
            try:
                for doc_id in self._knowledge.get(name, everything).index.pending_documents():
                    self.submit(name, doc_id)
            except BendiError as exc:
                log.warning("cannot recover pending documents of %s: %s", name, exc.message)

    def submit(self, kb_name: str, doc_id: int) -> None:
        self._queue.put(_Job(kb_name, doc_id))

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0 and self._scans.unfinished_tasks == 0

    def _run(self, jobs: queue.Queue[_Job | None]) -> None:
        while True:
            job = jobs.get()
            try:
                if job is None:
                    return
                self._process(job, quick=jobs is self._queue)
            except Exception:  # one bad job must never kill the worker
                log.exception(
                    "ingestion of document %s in %s failed",
                    job.doc_id if job else "?",
                    job.kb_name if job else "?",
                )
            finally:
                jobs.task_done()  # after a hand-over to the scan lane: idle() never sees a gap

    def _process(self, job: _Job, *, quick: bool) -> None:
        try:
            kb = self._knowledge.get(job.kb_name, KbScope.everything())  # see the class docstring
        except BendiError:
            return  # the base was deleted while the job waited
        stored = kb.index.stored_path(job.doc_id)
        try:
            doc = kb.index.document(job.doc_id)
        except BendiError:
            return  # the document was deleted while the job waited
        if stored is None or not Path(stored).is_file():
            kb.index.set_status(
                job.doc_id, "failed", "The uploaded file is missing on disk; upload it again."
            )
            return
        if quick and is_probably_scan(Path(stored)):
            self._scans.put(job)
            return
        # The base's lock is taken for embedding and the write only, not while OCR reads pages.
        ingest_file(kb, Path(stored), doc.file, source_key="upload:" + doc.file, doc_id=job.doc_id,
                    lock=kb.write_lock)  # fmt: skip

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.put(None)
        self._scans.put(None)
        self._thread.join(timeout_s)
        self._scan_thread.join(timeout_s)

    async def aclose(self) -> None:
        import asyncio

        await asyncio.to_thread(self.close)
