"""Server-sent events and disconnect handling shared by the API translators."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Message, Send

from bendi.core.errors import BendiError
from bendi.engines.messages import GenerationEvent

T = TypeVar("T")
log = logging.getLogger("bendi.gateway")
DONE = b"data: [DONE]\n\n"
DISCONNECT_POLL_S = 0.25


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
    request: Request, work: Awaitable[T], *, discard: Callable[[T], Awaitable[None]] | None = None
) -> T:
    """Run `work` (a generation, or opening one), cancelling it if the client goes away meanwhile.
    `discard` cleans up a result that was ready just as the client left (e.g. closes a session)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, BendiError):
                    result = await task
                    if discard is not None:
                        await discard(result)
                raise asyncio.CancelledError("client disconnected")
    finally:
        if not task.done():
            task.cancel()


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
        async def guarded_send(message: Message) -> None:
            try:
                await asyncio.wait_for(send(message), timeout=self._send_timeout_s)
            except TimeoutError:
                log.warning(
                    "dropped a client that stopped reading its stream for %.0f s", self._send_timeout_s
                )
                raise

        try:
            await super().stream_response(guarded_send)
        finally:
            await self._on_close()
