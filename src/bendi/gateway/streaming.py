"""Server-sent events and disconnect handling shared by the API translators."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import Request

from bendi.core.errors import BendiError
from bendi.engines.messages import GenerationEvent

T = TypeVar("T")
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


async def run_until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run a non-streaming generation, cancelling it if the client goes away meanwhile."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, BendiError):
                    await task
                raise asyncio.CancelledError("client disconnected")
    finally:
        if not task.done():
            task.cancel()
