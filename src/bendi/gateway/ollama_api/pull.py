"""/api/pull and /api/delete (the model store in Ollama's wire format), and the HEAD / liveness probe."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from bendi.core.errors import UserInputError
from bendi.gateway.dependencies import get_services
from bendi.gateway.generation import error_text
from bendi.gateway.ollama_api.protocol import ModelRequest, PullRequest
from bendi.gateway.streaming import GuardedStreamingResponse, ndjson
from bendi.services import Services

if TYPE_CHECKING:
    from bendi.store.store import PullProgress, Store

router = APIRouter(tags=["ollama"])
ServicesDep = Annotated[Services, Depends(get_services)]
PROGRESS_EVERY_S = 0.25  # a progress line at most this often per file (clients redraw a bar)


def _store(services: Services) -> Store:
    existing = getattr(services, "store", None)  # the composition root's, once it offers one
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    from bendi.store.store import Store

    return Store(services.settings, services.paths)


def ollama_status(progress: PullProgress) -> dict[str, Any]:
    """A store progress report as Ollama's status line."""
    if progress.status == "resolving":
        return {"status": "pulling manifest"}
    if progress.status == "downloading":
        # Ollama keys progress bars by layer digest; the file name is our stable per-layer key.
        line: dict[str, Any] = {"status": f"pulling {progress.file_name}", "digest": progress.file_name or ""}
        if progress.total_bytes:
            line["total"] = progress.total_bytes
        line["completed"] = progress.completed_bytes
        return line
    if progress.status == "verifying":
        return {"status": "verifying sha256 digest"}
    return {"status": progress.status}


async def _pull_events(
    store: Store, reference: str, cancel: threading.Event
) -> AsyncIterator[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    last_sent: dict[str, Any] = {"key": "", "at": 0.0}

    def on_progress(progress: PullProgress) -> None:  # runs on the download thread
        line = ollama_status(progress)
        now = time.monotonic()
        same_kind = line["status"] == last_sent["key"]
        done = line.get("completed") == line.get("total")
        if same_kind and not done and now - float(last_sent["at"]) < PROGRESS_EVERY_S:
            return
        last_sent.update(key=line["status"], at=now)
        loop.call_soon_threadsafe(queue.put_nowait, line)

    def work() -> None:
        try:
            store.pull(reference, progress=on_progress, cancel=cancel)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    task = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        while (line := await queue.get()) is not None:
            if line["status"] == "success":
                yield {"status": "writing manifest"}
            yield line
        await task  # raises the pull's error, if any
    finally:
        cancel.set()  # the client went away (or we failed): stop downloading, keep the partial
        if not task.done():
            with contextlib.suppress(BaseException):
                await asyncio.shield(task)


@router.post("/api/pull", response_model=None)
async def pull(body: PullRequest, services: ServicesDep) -> Any:
    if not body.target:
        raise UserInputError('Say which model to pull: {"model": "deepseek-r1:7b"}.')
    store, cancel = _store(services), threading.Event()
    if not body.stream:
        last: dict[str, Any] = {}
        async for line in _pull_events(store, body.target, cancel):
            last = line
        return last
    events = _pull_events(store, body.target, cancel)

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for line in events:
                yield ndjson(line)
        except Exception as exc:  # mid-stream failure: the status is already 200
            yield ndjson({"error": error_text(exc)[0]})

    async def on_close() -> None:
        cancel.set()
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]

    return GuardedStreamingResponse(stream(), send_timeout_s=services.settings.stalled_reader_timeout_s,
                                    on_close=on_close, media_type="application/x-ndjson",
                                    headers={"Cache-Control": "no-cache"})  # fmt: skip


@router.delete("/api/delete")
async def delete(body: ModelRequest, request: Request, services: ServicesDep) -> Response:
    if not body.target:
        raise UserInputError('Say which model to delete: {"model": "NAME"}.')
    from bendi.gateway.ollama_api.create import delete_preset_or_check_base

    if delete_preset_or_check_base(request, services, body.target):  # a preset: removed, nothing else
        return Response(status_code=200)
    store = _store(services)
    installed = store.get(body.target)
    if installed is not None:
        await services.engines.unload(installed.name)  # never delete a file a running engine maps
    await asyncio.to_thread(store.remove, body.target)  # ModelNotFoundError: 404
    return Response(status_code=200)


@router.head("/", include_in_schema=False)
async def heartbeat() -> Response:
    # The ollama CLI and some clients probe `HEAD /` before anything else (GET / is the web UI).
    return Response(status_code=200)
