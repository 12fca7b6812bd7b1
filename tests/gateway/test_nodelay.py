"""Accepted connections send each streamed token at once (Nagle off) and a whole reply in one write."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

from bendi.gateway.nodelay import disable_nagle


@contextlib.contextmanager
def served(app) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """A real uvicorn server on loopback with the protocol `bendi serve` picks; yields its port."""
    import threading

    import uvicorn

    from bendi.gateway import nodelay

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, http=nodelay.http_protocol(), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


def test_an_accepted_connection_gets_tcp_nodelay() -> None:
    async def scenario() -> int:
        option: dict[str, int] = {}

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            disable_nagle(writer.transport)
            option["nodelay"] = writer.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY
            )
            writer.close()

        # A listening socket made the way uvicorn makes it: proto 0, which asyncio skips.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        server = await asyncio.start_server(accepted, sock=listener)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()
        return option["nodelay"]

    assert asyncio.run(scenario()) != 0


def test_bendi_serve_uses_the_nodelay_protocol() -> None:
    import inspect

    from bendi.cli import serving

    assert "http=http_protocol()" in inspect.getsource(serving.serve)


def test_the_served_protocol_turns_nagle_off_on_each_connection(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A real uvicorn server with the protocol `bendi serve` picks (httptools when installed): every
    accepted connection goes through disable_nagle and ends up with TCP_NODELAY set."""
    import httpx

    from bendi.gateway import nodelay

    seen: list[int] = []

    def recording(transport: asyncio.BaseTransport) -> None:
        disable_nagle(transport)
        seen.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(nodelay, "disable_nagle", recording)

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with served(app) as port:
        for _ in range(2):  # two connections, each its own
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok"
    assert len(seen) == 2 and all(seen)


def test_a_whole_reply_leaves_in_one_write_and_a_streams_head_is_not_held(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The served protocol sends a response's head with its body (one system call, one wake-up of
    the reader), but never holds a stream's head while the stream waits for its first piece."""
    import time

    import httpx

    from bendi.gateway import nodelay

    writes: list[bytes] = []

    class Recorder:  # beneath HeadWithBody: what reaches the socket
        def __init__(self, transport: asyncio.Transport) -> None:
            self._transport = transport

        def write(self, data: bytes) -> None:
            writes.append(bytes(data))
            self._transport.write(data)

        def __getattr__(self, name: str) -> object:
            return getattr(self._transport, name)

    real = nodelay.HeadWithBody

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        if scope["path"] == "/stream":
            await asyncio.sleep(0.5)  # a stream waiting for its first token
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body", "body": b"whole answer"})

    monkeypatch.setattr(nodelay, "HeadWithBody", lambda transport: real(Recorder(transport)))
    with served(app) as port, httpx.Client(timeout=5) as client:
        assert client.get(f"http://127.0.0.1:{port}/whole").text == "whole answer"
        whole = list(writes)
        writes.clear()
        started = time.monotonic()
        with client.stream("GET", f"http://127.0.0.1:{port}/stream") as response:
            head_after = time.monotonic() - started
            assert response.read() == b"first"
    assert len(whole) == 1 and whole[0].startswith(b"HTTP/1.1 200") and b"whole answer" in whole[0]
    assert head_after < 0.4, head_after  # the head left before the first piece, 0.5 s later
    assert writes[0].startswith(b"HTTP/1.1 200") and b"first" not in writes[0]
