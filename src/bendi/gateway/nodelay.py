"""Streamed tokens leave at once (TCP_NODELAY on every connection the server accepts), and a
response's head leaves with its body.

asyncio turns Nagle's algorithm off only for sockets whose `proto` is IPPROTO_TCP, and the
sockets uvicorn accepts report 0. On a kept-alive connection (every OpenAI/Ollama SDK client)
each small write after the first then waited for the client's delayed ACK: a stream's tokens
arrived in 40 ms bursts and its first token ~40 ms late.

The HTTP parser is httptools (C) when it is installed, h11 (pure Python) otherwise: on a request
that an engine answers in ~10 ms, h11's parsing and event machinery were a tenth of bendi's own
CPU per request (bench_replicas.py --overhead-only).

uvicorn writes a response's status line and headers as soon as the app starts the response, and
the body in a second write: two system calls, and a client (or a bendi router in front) that
wakes for the head and again for the body. The head is held until the body's first write or the
end of the event loop's current pass, whichever comes first, so a whole reply leaves in one write
and a stream's head is never late by more than that pass.
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


class HeadWithBody:
    """A transport that holds a response head (a write that is exactly "HTTP/... \r\n\r\n") until
    the next write or the end of the loop's pass. Everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head + bytes(data))
        elif data[:5] == b"HTTP/" and data[-4:] == b"\r\n\r\n":
            self._head = bytes(data)
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


def _prepared(transport: asyncio.Transport) -> asyncio.Transport:
    disable_nagle(transport)
    return HeadWithBody(transport)  # type: ignore[return-value]


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_prepared(transport))


def http_protocol() -> type[asyncio.Protocol]:
    """The fastest HTTP/1.1 protocol installed, with Nagle off."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is not installed: h11 works everywhere
        return NoDelayH11Protocol

    class NoDelayHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_prepared(transport))

    return NoDelayHttpToolsProtocol
