"""Many users at once: batched streams stay independent; a flood gets 503/429, never a hang."""

from __future__ import annotations

import asyncio

import httpx
import psutil

MODEL = "smollm2:135m"
URL = "/v1/chat/completions"


def chat_body(prompt: str, max_tokens: int = 24, **extra: object) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, **extra}  # fmt: skip


async def stream_text(client: httpx.AsyncClient, body: dict[str, object]) -> str:
    import json

    text = []
    async with client.stream("POST", URL, json=body | {"stream": True}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices", []):
                    text.append(choice["delta"].get("content") or "")
    return "".join(text)


def test_eight_simultaneous_streams_equal_lone_requests(bendi_server) -> None:  # type: ignore[no-untyped-def]
    prompts = [f"Give me fact number {i} about coal." for i in range(8)]

    async def scenario() -> tuple[list[str], list[str]]:
        async with httpx.AsyncClient(base_url=bendi_server.base_url, timeout=120) as client:
            alone = [await stream_text(client, chat_body(p)) for p in prompts]
            together = await asyncio.gather(*(stream_text(client, chat_body(p)) for p in prompts))
            return alone, list(together)

    alone, together = asyncio.run(scenario())
    assert all(alone)
    assert together == alone


def test_flood_gets_success_or_retryable_refusal_and_server_stays_healthy(bendi_server_factory) -> None:  # type: ignore[no-untyped-def]
    server = bendi_server_factory(
        env={"BENDI_PARALLEL_SEQUENCES": "2", "BENDI_MAX_QUEUE": "2", "BENDI_MAX_QUEUE_WAIT_S": "3"},
        args=("--model", MODEL),
    )
    process = psutil.Process(server.proc.pid)

    async def flood(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=180) as client:
            return await asyncio.gather(*(client.post(URL, json=chat_body(f"q{i}", 16)) for i in range(n)))

    asyncio.run(flood(4))  # warm up
    rss_before = process.memory_info().rss
    for _ in range(2):
        responses = asyncio.run(flood(40))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 503, 429}, statuses
        assert 200 in statuses and 503 in statuses
        for refused in (r for r in responses if r.status_code != 200):
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.json()["error"]["code"] == "server_overloaded"
    assert httpx.get(server.base_url + "/health").status_code == 200
    assert process.memory_info().rss < rss_before + 64 * 1024 * 1024  # flat, not growing per request
    metrics = httpx.get(server.base_url + "/metrics").text
    assert 'bendi_rejected_requests_total{model="smollm2:135m",status="503"}' in metrics
    assert 'bendi_admission_queue_depth{model="smollm2:135m"} 0' in metrics  # nothing left behind
    assert 'bendi_admission_running{model="smollm2:135m"} 0' in metrics


def test_per_client_quota_is_429_in_each_api_dialect(bendi_server_factory) -> None:  # type: ignore[no-untyped-def]
    server = bendi_server_factory(env={"BENDI_PER_CLIENT_MAX_CONCURRENT": "1"}, args=("--model", MODEL))

    async def scenario() -> tuple[httpx.Response, httpx.Response, int]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            body = chat_body("long", 300, stream=True, ignore_eos=True)
            async with client.stream("POST", URL, json=body) as running:
                # Keep the line iterator referenced: a collected one closes the connection (a disconnect).
                lines = running.aiter_lines()
                while not (await anext(lines)).startswith("data: {"):
                    pass  # once a chunk arrived, this request holds the client's only slot
                openai = await client.post(URL, json=chat_body("second", 4))
                ollama = await client.post("/api/chat", json={"model": MODEL, "stream": False,
                                                              "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
            # The server sees the disconnect asynchronously: the slot comes back within moments, not
            # necessarily before the next request arrives.
            after = await client.post(URL, json=chat_body("third", 2))
            for _ in range(50):
                if after.status_code != 429:
                    break
                await asyncio.sleep(0.1)
                after = await client.post(URL, json=chat_body("third", 2))
            return openai, ollama, after.status_code

    openai, ollama, after = asyncio.run(scenario())
    assert openai.status_code == 429 and int(openai.headers["Retry-After"]) >= 1
    assert openai.json()["error"]["type"] == "rate_limit_error"
    assert ollama.status_code == 429 and int(ollama.headers["Retry-After"]) >= 1
    assert isinstance(ollama.json()["error"], str)
    assert after == 200  # closing the stream gave the slot back


def test_a_reader_that_stops_reading_is_dropped(bendi_server_factory) -> None:  # type: ignore[no-untyped-def]
    import socket

    env = {
        "BENDI_STALLED_READER_TIMEOUT_S": "1",
        "BENDI_PARALLEL_SEQUENCES": "1",
        "BENDI_MAX_QUEUE_WAIT_S": "180",
    }
    server = bendi_server_factory(env=env, args=("--model", MODEL))
    body = httpx.Request(
        "POST", server.base_url + URL, json=chat_body("x" * 50, 6000, stream=True, ignore_eos=True)
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small TCP window
    sock.connect(("127.0.0.1", server.port))
    head = f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body.content)}\r\n\r\n"
    sock.sendall(head.encode() + body.content)  # ... and never read the answer
    try:
        # With one slot, a second request only runs once the stalled reader has been dropped
        # (6,000 tokens would hold the slot for minutes otherwise).
        response = httpx.post(server.base_url + URL, json=chat_body("after", 4), timeout=240)
        assert response.status_code == 200
        assert "dropped a client that stopped reading" in server.log_path.read_text()
    finally:
        sock.close()


def test_a_client_that_disconnects_frees_its_slot_at_once(bendi_server_factory) -> None:  # type: ignore[no-untyped-def]
    server = bendi_server_factory(env={"BENDI_PARALLEL_SEQUENCES": "1", "BENDI_MAX_QUEUE_WAIT_S": "20"},
                                  args=("--model", MODEL))  # fmt: skip
    long_body = chat_body("x", 3000, stream=True, ignore_eos=True)  # minutes of work if never cancelled
    with httpx.stream("POST", server.base_url + URL, json=long_body, timeout=60) as response:
        lines = response.iter_lines()
        while not next(lines).startswith("data: {"):
            pass
    # The connection is closed: the generation must stop and hand the only slot to the next request.
    after = httpx.post(server.base_url + URL, json=chat_body("after", 4), timeout=60)
    assert after.status_code == 200
    metrics = httpx.get(server.base_url + "/metrics").text
    assert 'bendi_active_sequences{model="smollm2:135m"} 0' in metrics
