"""A client that sends a non-streaming request and goes away while it is being answered.

A raw socket, so the client leaves exactly when the server is known to be generating for it: a
client timeout raced the answer, which speculation on repetitive text can finish in a second."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx


def post_and_leave(base_url: str, path: str, body: dict[str, Any], generating: Callable[[], bool]) -> None:
    """POST `body` and close the connection as soon as `generating()` is true (within 30 s)."""
    url = httpx.URL(base_url)
    payload = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {url.netloc.decode()}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n")  # fmt: skip
    with socket.create_connection((url.host, url.port), timeout=10) as client:
        client.sendall(head.encode() + payload)
        deadline = time.monotonic() + 30  # a loaded machine may still be reading the prompt
        while not generating():
            assert time.monotonic() < deadline, "the server never started generating"
            time.sleep(0.05)
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            early = client.recv(4096)
            raise AssertionError(f"the answer came before the client left: {early[:400]!r}")
