"""Streamed tokens leave at once: TCP_NODELAY on every connection the server accepts.

asyncio turns Nagle's algorithm off only for sockets whose `proto` is IPPROTO_TCP, and the
sockets uvicorn accepts report 0. On a kept-alive connection (every OpenAI/Ollama SDK client)
each small write after the first then waited for the client's delayed ACK: a stream's tokens
arrived in 40 ms bursts and its first token ~40 ms late.

The HTTP parser is httptools (C) when it is installed, h11 (pure Python) otherwise: on a request
that an engine answers in ~10 ms, h11's parsing and event machinery were a tenth of bendi's own
CPU per request (bench_replicas.py --overhead-only).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


def disable_nagle(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # not TCP after all: nothing to do
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        disable_nagle(transport)
        super().connection_made(transport)


def http_protocol() -> type[asyncio.Protocol]:
    """The fastest HTTP/1.1 protocol installed, with Nagle off."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is not installed: h11 works everywhere
        return NoDelayH11Protocol

    class NoDelayHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            disable_nagle(transport)
            super().connection_made(transport)

    return NoDelayHttpToolsProtocol
