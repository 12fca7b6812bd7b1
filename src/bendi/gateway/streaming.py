"""Server-sent events and disconnect handling shared by the API translators."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Message, Send

from bendi.core.errors import BendiError
from bendi.engines.messages import GenerationEvent

T = TypeVar("T")
log = logging.getLogger("bendi.gateway")
DONE = b"data: [DONE]\n\n"
CLIENT_GONE = "The client closed the connection; the generation was stopped."


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def ndjson(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


async def start_generation(
    events: AsyncIterator[GenerationEvent],
) -> tuple[GenerationEvent, AsyncIterator[GenerationEvent]]:
    """Wait for the first event so that errors before generation (context overflow, server full)
    become a proper HTTP error status instead of a 200 stream that fails."""
    try:
        first = await anext(events)
    except BaseException:
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]
        raise
    return first, events


async def replay(
    first: GenerationEvent, rest: AsyncIterator[GenerationEvent]
) -> AsyncIterator[GenerationEvent]:
    yield first
    async for event in rest:
        yield event


async def run_until_disconnect(
    request: Request, work: Coroutine[Any, Any, T], *, keep_watching: bool = False
) -> T:
    """Run `work` (a generation, or opening one) in this task, cancelling it if the client goes away
    meanwhile; `keep_watching` leaves the disconnect watch running for a next phase of the same
    request. The watch cancels this task rather than `work` running in a task of its own: a task
    and an `asyncio.wait` per phase were a tenth of a replica router's event-loop work. `work` must
    clean up after itself when cancelled, as it had to in its own task."""
    watch = _disconnect_watch(request)
    state = request.state
    if watch.done() and not watch.cancelled():  # the client left between phases
        work.close()
        stop_disconnect_watch(request)
        raise ClientDisconnectedError(CLIENT_GONE)
    this = asyncio.current_task()
    state.bendi_guarded = this
    try:
        result = await work
    except BaseException as exc:
        stop_disconnect_watch(request)
        gone = getattr(state, "bendi_client_gone", False)
        # Cancelled by the watch (and by nobody else): the client left.
        if isinstance(exc, asyncio.CancelledError) and gone and this is not None and this.uncancel() == 0:
            raise ClientDisconnectedError(CLIENT_GONE) from None
        raise
    finally:
        state.bendi_guarded = None
    if not keep_watching:
        stop_disconnect_watch(request)
    return result


class ClientDisconnectedError(BendiError):
    """The client went away before its answer was ready (nginx's 499); nobody reads the response,
    but answering it keeps the middleware stack from logging a spurious server error."""

    http_status = 499
    code = "client_disconnected"


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    request.state.bendi_client_gone = True
    guarded: asyncio.Task[Any] | None = getattr(request.state, "bendi_guarded", None)
    if guarded is not None:
        guarded.cancel()


def _disconnect_watch(request: Request) -> asyncio.Task[None]:
    """One task per request that blocks on `receive()` until the client goes away, then cancels the
    phase in progress (run_until_disconnect). Polling `request.is_disconnected()` instead can lose the
    disconnect message inside Starlette's BaseHTTPMiddleware (its receive is cancelled half-way), and
    then a gone client is never noticed."""
    watch: asyncio.Task[None] | None = getattr(request.state, "bendi_disconnect_watch", None)
    if watch is None:
        watch = asyncio.ensure_future(_wait_for_disconnect(request))
        request.state.bendi_disconnect_watch = watch
    return watch


def stop_disconnect_watch(request: Request) -> None:
    """Stop watching (the response is complete, or a StreamingResponse takes over listening)."""
    watch: asyncio.Task[None] | None = getattr(request.state, "bendi_disconnect_watch", None)
    if watch is not None and not watch.done():
        watch.cancel()


class GuardedStreamingResponse(StreamingResponse):
    """A stream whose reader must keep reading: a send blocked longer than `send_timeout_s` (a client
    that stopped reading) drops the connection, and `on_close` always runs (slot released, generation
    stopped) whether the stream ended, failed or the client went away."""

    def __init__(self, content: AsyncIterator[bytes], *, send_timeout_s: float,
                 on_close: Callable[[], Awaitable[None]], media_type: str, headers: dict[str, str]) -> None:  # fmt: skip
        super().__init__(content, media_type=media_type, headers=headers)
        self._send_timeout_s = send_timeout_s
        self._on_close = on_close

    async def stream_response(self, send: Send) -> None:
        # One watchdog per stream instead of a timeout around every send: `wait_for` made a task
        # and a timer per token, a tenth of the event loop's work at 8 streams.
        loop = asyncio.get_running_loop()
        blocked_since: float | None = None  # when the send in progress began
        stalled = False
        streaming = asyncio.current_task()

        async def tracked_send(message: Message) -> None:
            nonlocal blocked_since
            blocked_since = loop.time()
            await send(message)
            blocked_since = None

        async def watchdog() -> None:
            nonlocal stalled
            while True:
                await asyncio.sleep(min(1.0, self._send_timeout_s / 4))
                if blocked_since is not None and loop.time() - blocked_since >= self._send_timeout_s:
                    stalled = True
                    log.warning(
                        "dropped a client that stopped reading its stream for %.0f s", self._send_timeout_s
                    )
                    if streaming is not None:
                        streaming.cancel()
                    return

        watch = asyncio.ensure_future(watchdog())
        try:
            await super().stream_response(tracked_send)
        except asyncio.CancelledError:
            if stalled and streaming is not None and streaming.uncancel() == 0:
                raise TimeoutError("the client stopped reading its stream") from None
            raise
        finally:
            watch.cancel()
            await self._on_close()
