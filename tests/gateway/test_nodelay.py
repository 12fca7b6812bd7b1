"""Accepted connections send each streamed token at once (Nagle's algorithm off)."""

from __future__ import annotations

import asyncio
import socket

from bendi.gateway.nodelay import disable_nagle


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
    import threading

    import httpx
    import uvicorn

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

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, http=nodelay.http_protocol(), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        for _ in range(2):  # two connections, each its own
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok"
    finally:
        server.should_exit = True
        thread.join(10)
    assert len(seen) == 2 and all(seen)
