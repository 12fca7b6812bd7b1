"""A download body read straight off the socket into caller-owned buffers.

httpx hands out a new bytes object per 64 KiB chunk through several layers; for multi-GB models
that costs a third of loopback throughput. The bodies of GETs are therefore read with the
standard library's http.client, whose `readinto` fills our preallocated buffers directly (no
proxies from the environment either: nothing but allowed hosts is contacted). Every transport
failure surfaces as a retryable DownloadError, so callers tell "the link dropped" from "the disk
is full" (an OSError from their own writes).
"""

from __future__ import annotations

import functools
import http.client
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

import certifi

from bendi.core.errors import DownloadError
from bendi.store.partial import retryable


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """The trust store httpx uses (certifi), loaded once per process: loading it costs ~20 ms."""
    return ssl.create_default_context(cafile=certifi.where())


class Body:
    """One HTTP response: status, headers (case-insensitive), and `readinto` for the body."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self._connection, self._response = connection, response
        self.status_code = response.status
        self.headers = response.headers

    @property
    def is_redirect(self) -> bool:
        return self.status_code in (301, 302, 303, 307, 308) and "location" in self.headers

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Fill up to len(buffer) bytes; 0 at the end of the body. A dropped link raises (retryable)."""
        response = self._response
        try:
            if response.chunked or response.length is None:
                return response.readinto(buffer)
            # readinto would wait to fill the whole buffer; readinto1 returns what has arrived, so
            # progress and cancellation stay live on slow links and a drop loses no received byte.
            wanted = min(len(buffer), response.length)
            if wanted == 0:
                return 0
            size = response.fp.readinto1(memoryview(buffer)[:wanted])
        except http.client.IncompleteRead as exc:
            raise retryable("the connection closed before the end of the file") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise retryable(f"the connection failed: {exc!r}") from exc
        if size == 0:  # the server hung up with bytes still owed
            raise retryable("the connection closed before the end of the file")
        response.length -= size
        return size

    def close(self) -> None:
        self._response.close()
        self._connection.close()


def open_one(
    url: str, headers: Mapping[str, str], *, connect_timeout_s: float, read_timeout_s: float, user_agent: str
) -> Body:
    """One GET, no redirects followed; the caller checks the host policy first."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, parts.port, timeout=connect_timeout_s, context=ssl_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=connect_timeout_s)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.connect()
        assert connection.sock is not None
        connection.sock.settimeout(read_timeout_s)  # a stalled link fails after this, not never
        connection.request("GET", target, headers={"User-Agent": user_agent, **headers})
        return Body(connection, connection.getresponse())
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise DownloadError(f"Cannot reach {parts.netloc}: {exc!r}. Check the network.") from exc
