"""A small HTTP/1.1 client for the hot path to an upstream engine server (generate, embed).

Why not httpx here: a router in front of replicas pays the client's cost on every request, and
httpx writes headers and body in separate sends and re-frames every line through several layers.
This client writes each request in one send, keeps connections alive per server, reads chunked and
sized bodies, and hands SSE lines to the caller as they arrive. Rare calls (discovery, health,
tokenize) stay on httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024
MAX_IDLE_CONNECTIONS = 64  # kept open per server; more in flight at once are opened and closed


class UpstreamHttpError(Exception):
    """The server could not be reached, timed out, or broke the HTTP exchange."""


class UpstreamTimeoutError(UpstreamHttpError):
    """The server sent nothing for the read timeout (a hung server, or a whole reply that took longer)."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass
class Response:
    """A response whose body is read on demand: `lines()` for SSE, `read()` for the rest. The
    connection goes back to the pool only once the body has been read to its end."""

    status: int
    headers: dict[str, str]
    _pool: UpstreamHttp
    _conn: _Connection | None
    _remaining: int | None  # Content-Length still to read; None when chunked or until close
    _chunked: bool
    _reusable: bool
    _buffer: bytearray = field(default_factory=bytearray)

    async def _pieces(self) -> AsyncIterator[bytes]:
        conn = self._conn
        assert conn is not None
        reader, timeout = conn.reader, self._pool.read_timeout_s
        loop = asyncio.get_running_loop()
        # One idle timer for the whole body, pushed back as data arrives (asyncio.wait_for per read
        # would create a task for every chunk).
        idle = asyncio.timeout(timeout)
        try:
            async with idle:
                if self._chunked:
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                        if size == 0:
                            await reader.readuntil(b"\r\n")  # the end (servers here send no trailers)
                            break
                        data = await reader.readexactly(size + 2)
                        idle.reschedule(loop.time() + timeout)
                        yield data[:-2]
                elif self._remaining is not None:
                    while self._remaining > 0:
                        data = await reader.read(min(self._remaining, 65536))
                        if not data:
                            raise UpstreamHttpError("the server closed the connection mid-body")
                        self._remaining -= len(data)
                        idle.reschedule(loop.time() + timeout)
                        yield data
                else:  # delimited by the server closing the connection
                    self._reusable = False
                    while data := await reader.read(65536):
                        idle.reschedule(loop.time() + timeout)
                        yield data
        except TimeoutError as exc:  # before OSError, of which it is a subclass
            self._discard()
            raise UpstreamTimeoutError(f"no data from the server for {timeout:.0f} s") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self._discard()
            raise UpstreamHttpError(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled or closed mid-body: the connection is in an unknown state
            self._discard()
            raise
        self._release()

    async def lines(self) -> AsyncIterator[bytes]:
        """Body lines without their line ends, as they arrive (SSE: "data: ...", blank lines)."""
        buffer = self._buffer
        async for piece in self._pieces():
            buffer += piece
            start = 0
            while (end := buffer.find(b"\n", start)) >= 0:
                yield bytes(buffer[start:end]).rstrip(b"\r")
                start = end + 1
            del buffer[:start]
        if buffer:
            yield bytes(buffer)
            buffer.clear()

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self._pieces()])

    def _release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._pool._give_back(conn, self._reusable)

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        """Stop reading: a body left unread makes the connection useless, so it is closed (which
        is also how the server learns that the client went away and aborts the generation)."""
        self._discard()


class UpstreamHttp:
    """Keep-alive connections to one server (scheme://host:port), with connect and read timeouts."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str] | None = None,
        *,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 600.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/")
        host_header = parts.netloc.rpartition("@")[2]
        fixed = {"Host": host_header, "Accept": "*/*", **(headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._idle: list[_Connection] = []
        self._closed = False

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port, ssl=self._ssl, limit=MAX_HEADER_BYTES),
                self.connect_timeout_s,
            )
        except TimeoutError as exc:
            raise UpstreamHttpError(f"connecting took over {self.connect_timeout_s:.0f} s") from exc
        except OSError as exc:
            raise UpstreamHttpError(f"{type(exc).__name__}: {exc}") from exc
        return _Connection(reader, writer)

    def _give_back(self, conn: _Connection, reusable: bool) -> None:
        if reusable and not self._closed and len(self._idle) < MAX_IDLE_CONNECTIONS:
            self._idle.append(conn)
        else:
            conn.close()

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = "application/json"
    ) -> Response:
        """Send one request in one write and read the status line and headers. A kept-alive
        connection the server has closed meanwhile fails before any answer: that try is repeated
        once on a new connection (the request never reached the server, so it is safe)."""
        head = (
            f"{method} {self._prefix}{path} HTTP/1.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
        ).encode("latin-1")
        message = head + self._fixed + b"\r\n" + body
        while self._idle:
            conn = self._idle.pop()
            if conn.reader.at_eof() or conn.writer.is_closing():
                conn.close()
                continue
            try:
                return await self._exchange(conn, message, stale_ok=True)
            except _StaleConnection:
                continue
        return await self._exchange(await self._connect(), message, stale_ok=False)

    async def _exchange(self, conn: _Connection, message: bytes, *, stale_ok: bool) -> Response:
        try:
            conn.writer.write(message)
            async with asyncio.timeout(self.read_timeout_s):
                await conn.writer.drain()
                head = await conn.reader.readuntil(b"\r\n\r\n")
        except TimeoutError as exc:  # before OSError, of which it is a subclass
            conn.close()
            raise UpstreamTimeoutError(f"no answer from the server for {self.read_timeout_s:.0f} s") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            conn.close()
            nothing_read = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
            if stale_ok and nothing_read:
                raise _StaleConnection from exc
            raise UpstreamHttpError(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled mid-exchange: the connection is in an unknown state
            conn.close()
            raise
        return self._parse_head(conn, head)

    def _parse_head(self, conn: _Connection, head: bytes) -> Response:
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        try:
            status = int(rest[:3])
        except ValueError:
            conn.close()
            raise UpstreamHttpError(f"not an HTTP answer: {status_line[:80]!r}") from None
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        remaining = None if chunked or length is None else int(length)
        keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        reusable = keep_alive and (chunked or remaining is not None)
        return Response(status, headers, self, conn, remaining, chunked, reusable)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _StaleConnection(Exception):
    """A kept-alive connection the server had already closed."""
