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

    assert "http=NoDelayH11Protocol" in inspect.getsource(serving.serve)
