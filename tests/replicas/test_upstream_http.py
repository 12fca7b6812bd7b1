"""The router's HTTP/1.1 client (engines/upstream_http.py) against a real uvicorn server on loopback:
keep-alive reuse, chunked SSE, a kept-alive connection the server closed, timeouts, refusals."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from bendi.engines.upstream_http import UpstreamHttp, UpstreamHttpError
from server_process import free_port

KEEP_ALIVE_S = 0.5  # the server closes idle connections this soon


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    client = request.client
    return JSONResponse({"body": body.decode(), "auth": request.headers.get("authorization"),
                         "path": request.url.path, "client_port": client.port if client else 0})  # fmt: skip


async def events(request: Request) -> StreamingResponse:
    count = int(json.loads(await request.body())["count"])

    async def lines() -> AsyncIterator[bytes]:
        for i in range(count):
            # Two events in one chunk, then one split over two chunks: lines must come out whole.
            yield f'data: {{"i": {i}}}\n\n'.encode()
            await asyncio.sleep(0)
        yield b'data: {"tail": '
        yield b"true}\n\ndata: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream")


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(3)
    return JSONResponse({})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    app = Starlette(routes=[Route("/base/echo", echo, methods=["POST"]), Route("/base/sse", events, methods=["POST"]),
                            Route("/base/slow", slow, methods=["POST"])])  # fmt: skip
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/base"
    uv.should_exit = True
    thread.join(10)


def test_one_connection_is_kept_alive_and_headers_and_body_arrive(server: str) -> None:
    async def scenario() -> list[dict]:
        http = UpstreamHttp(server, {"Authorization": "Bearer k-1"})
        answers = []
        for i in range(3):
            response = await http.request("POST", "/echo", f'{{"n": {i}}}'.encode())
            assert response.status == 200
            answers.append(json.loads(await response.read()))
        await http.close()
        return answers

    answers = asyncio.run(scenario())
    assert [a["body"] for a in answers] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert {a["auth"] for a in answers} == {"Bearer k-1"} and answers[0]["path"] == "/base/echo"
    assert len({a["client_port"] for a in answers}) == 1, answers  # one connection, reused


def test_chunked_sse_comes_out_as_whole_lines_and_the_connection_is_reused(server: str) -> None:
    async def scenario() -> tuple[list[bytes], int, int]:
        http = UpstreamHttp(server)
        response = await http.request("POST", "/sse", b'{"count": 50}')
        lines = [line async for line in response.lines() if line]
        first = json.loads(await (await http.request("POST", "/echo", b"")).read())["client_port"]
        second = json.loads(await (await http.request("POST", "/echo", b"")).read())["client_port"]
        await http.close()
        return lines, first, second

    lines, first, second = asyncio.run(scenario())
    assert lines == [f'data: {{"i": {i}}}'.encode() for i in range(50)] + [
        b'data: {"tail": true}',
        b"data: [DONE]",
    ]
    assert first == second


def test_a_connection_the_server_closed_while_idle_is_replaced(server: str) -> None:
    async def scenario() -> tuple[int, int]:
        http = UpstreamHttp(server)
        before = json.loads(await (await http.request("POST", "/echo", b"a")).read())["client_port"]
        await asyncio.sleep(KEEP_ALIVE_S * 3)  # the server has closed it by now
        after = json.loads(await (await http.request("POST", "/echo", b"b")).read())["client_port"]
        await http.close()
        return before, after

    before, after = asyncio.run(scenario())
    assert before != after


def test_a_stream_closed_early_does_not_poison_the_pool(server: str) -> None:
    async def scenario() -> str:
        http = UpstreamHttp(server)
        response = await http.request("POST", "/sse", b'{"count": 1000}')
        async for _ in response.lines():
            break
        await response.aclose()  # the rest of the body is unread: this connection cannot be reused
        answer = json.loads(await (await http.request("POST", "/echo", b"next")).read())["body"]
        await http.close()
        return str(answer)

    assert asyncio.run(scenario()) == "next"


def test_timeouts_and_refusals_are_upstream_errors(server: str) -> None:
    async def slow_answer() -> None:
        http = UpstreamHttp(server, read_timeout_s=0.3)
        try:
            await http.request("POST", "/slow", b"")
        finally:
            await http.close()

    with pytest.raises(UpstreamHttpError, match="no answer from the server"):
        asyncio.run(slow_answer())

    async def nobody_listening() -> None:
        await UpstreamHttp(f"http://127.0.0.1:{free_port()}").request("POST", "/x", b"")

    with pytest.raises(UpstreamHttpError, match="ConnectionRefused"):
        asyncio.run(nobody_listening())
    with pytest.raises(ValueError, match="not an http"):
        UpstreamHttp("ftp://127.0.0.1:1")
