"""The knowledge-base HTTP API on a real `bendi serve`: manage, upload (background ingestion), search,
ask (JSON and SSE), and chat with a knowledge base through the official OpenAI and Ollama clients."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kb_testing import MINING_SUBSET, KbServer, free_port, make_home

QUESTION = "矿山建设工程的安全设施必须和主体工程同时设计吗？"
UPLOAD_LIMIT_BYTES = 400_000
KB = "/v1/knowledge-bases"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, kb_cache_dir: Path) -> Iterator[KbServer]:
    home = make_home(tmp_path_factory.mktemp("kb-http") / "home", kb_cache_dir)
    env = {"BENDI_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT_BYTES), "BENDI_CONTEXT_TOKENS": "2048",
           "BENDI_PARALLEL_SEQUENCES": "2"}  # fmt: skip
    proc = KbServer(home, free_port(), env)
    try:
        proc.wait_ready(timeout_s=90)
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def client(server: KbServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=280) as c:
        yield c


def _wait_indexed(client: httpx.Client, kb: str, timeout_s: float = 150) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        docs = client.get(f"{KB}/{kb}/documents").json()["data"]
        if all(d["status"] not in ("queued", "processing") for d in docs):
            return list(docs)
        time.sleep(0.5)
    raise AssertionError(f"ingestion did not finish: {docs}")


@pytest.fixture(scope="module")
def mining(client: httpx.Client, mining_dir: Path) -> str:
    created = client.post(KB, json={"name": "mining", "description": "煤矿安全法规"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "mining" and created.json()["embedding_model"] == "multilingual-e5-small"
    files = [("files", (f"法规/{Path(rel).name}", (mining_dir / rel).read_bytes(), "text/markdown"))
             for rel in MINING_SUBSET[:2]]  # fmt: skip
    files.append(("files", ("坏文件.pdf", b"%PDF-1.4\n" + b"\x00\xff" * 64, "application/pdf")))
    accepted = client.post(KB + "/mining/documents", files=files)
    assert accepted.status_code == 202, accepted.text
    assert {d["status"] for d in accepted.json()["data"]} <= {"queued", "processing", "indexed"}
    docs = {d["file"]: d for d in _wait_indexed(client, "mining")}
    assert docs["坏文件.pdf"]["status"] == "failed" and "坏文件.pdf" in docs["坏文件.pdf"]["error"]
    for rel in MINING_SUBSET[:2]:
        assert docs[f"法规/{Path(rel).name}"]["status"] == "indexed"
        assert docs[f"法规/{Path(rel).name}"]["chunks"] > 10
    return "mining"


def test_management_and_errors(client: httpx.Client, mining: str) -> None:
    listed = client.get(KB).json()["data"]
    assert [kb["name"] for kb in listed] == ["mining"] and listed[0]["documents"] == 3
    assert client.post(KB, json={"name": "mining"}).status_code == 409
    bad = client.post(KB, json={"name": "../etc"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_name"
    assert client.get(KB + "/nope").status_code == 404
    evil = client.post(f"{KB}/{mining}/documents", files=[("files", ("../evil.md", b"x", "text/plain"))])
    assert evil.status_code == 400 and "'..'" in evil.json()["error"]["message"]
    big = client.post(
        f"{KB}/{mining}/documents",
        files=[("files", ("big.txt", b"a" * (UPLOAD_LIMIT_BYTES + 10), "text/plain"))],
    )
    assert big.status_code == 413 and "BENDI_MAX_UPLOAD_BYTES" in big.json()["error"]["message"]
    assert all(
        d["file"] not in ("big.txt", "../evil.md")
        for d in client.get(f"{KB}/{mining}/documents").json()["data"]
    )


def test_search_hits_follow_the_contract(client: httpx.Client, mining: str) -> None:
    response = client.post(f"{KB}/{mining}/search", json={"query": QUESTION, "top_k": 3})
    hits = response.json()["data"]
    assert len(hits) == 3
    assert set(hits[0]) == {"chunk_id", "doc_id", "file", "page", "article", "heading", "score", "text"}
    assert hits[0]["file"].endswith("矿山安全法(2009-08-27).md") and hits[0]["article"] == "第七条"
    doc = client.get(f"{KB}/{mining}/documents/{hits[0]['doc_id']}").json()
    assert doc["file"] == hits[0]["file"]


def test_ask_json_stream_and_refusal(client: httpx.Client, mining: str) -> None:
    body = client.post(f"{KB}/{mining}/ask", json={"question": QUESTION, "max_tokens": 32}).json()
    assert body["answer"] and body["model"] and body["usage"]["completion_tokens"] > 0
    assert body["citations"][0]["index"] == 1 and body["citations"][0]["article"] == "第七条"
    assert {"chunk_id", "doc_id", "file", "page", "heading", "text", "score"} <= set(body["citations"][0])

    refused = client.post(f"{KB}/{mining}/ask", json={"question": "巴黎埃菲尔铁塔有多高？"}).json()
    assert (
        refused["citations"] == []
        and "不知道" in refused["answer"]
        and refused["usage"]["completion_tokens"] == 0
    )

    events = []
    with client.stream(
        "POST", f"{KB}/{mining}/ask", json={"question": QUESTION, "stream": True, "max_tokens": 16}
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    assert parsed[0]["type"] == "citations" and parsed[0]["citations"][0]["article"] == "第七条"
    assert parsed[-1]["type"] == "done" and parsed[-1]["usage"]["completion_tokens"] > 0
    assert {p["type"] for p in parsed[1:-1]} <= {"content", "reasoning"} and len(parsed) > 2


def test_chat_through_openai_and_ollama_clients(server: KbServer, mining: str) -> None:
    import ollama
    import openai

    oa = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused")
    completion = oa.chat.completions.create(model=f"kb:{mining}", max_tokens=24,
                                            messages=[{"role": "user", "content": QUESTION}])  # fmt: skip
    extra = completion.model_extra or {}
    assert completion.choices[0].message.content
    assert extra["citations"][0]["article"] == "第七条"
    stream = oa.chat.completions.create(model="smollm2:135m", max_tokens=16, stream=True,
                                        messages=[{"role": "user", "content": QUESTION}],
                                        extra_body={"knowledge_base": mining})  # fmt: skip
    chunks = list(stream)
    assert (chunks[0].model_extra or {})["citations"][0]["article"] == "第七条"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    ol = ollama.Client(host=server.base_url)
    reply = ol.chat(model=f"kb:{mining}", messages=[{"role": "user", "content": QUESTION}],
                    options={"num_predict": 16})  # fmt: skip
    assert reply.message.content
    # The ollama client drops fields it does not know; the wire object carries the citations.
    raw = httpx.post(server.base_url + "/api/chat", timeout=280, json={
        "model": f"kb:{mining}", "stream": False, "options": {"num_predict": 8},
        "messages": [{"role": "user", "content": QUESTION}]}).json()  # fmt: skip
    assert raw["done"] is True and raw["citations"][0]["article"] == "第七条"


def test_delete_document_and_base(client: httpx.Client, mining: str) -> None:
    docs = client.get(f"{KB}/{mining}/documents").json()["data"]
    victim = next(d for d in docs if d["status"] == "failed")
    assert client.delete(f"{KB}/{mining}/documents/{victim['id']}").json() == {"deleted": True}
    assert client.get(f"{KB}/{mining}/documents/{victim['id']}").status_code == 404
    created = client.post(KB, json={"name": "scratch"})
    assert created.status_code == 201
    assert client.delete(KB + "/scratch").json() == {"deleted": True}
    assert client.get(KB + "/scratch").status_code == 404


def test_chinese_names_by_identifier_or_percent_encoded_display_name(client: httpx.Client) -> None:
    from urllib.parse import quote

    created = client.post(KB, json={"name": "  矿井 通风  ", "description": "通风科"})
    assert created.status_code == 201, created.text
    ident, shown = created.json()["name"], created.json()["display_name"]
    assert shown == "矿井 通风" and ident.startswith("kb-") and ident.isascii()
    assert {kb["name"]: kb["display_name"] for kb in client.get(KB).json()["data"]}[ident] == shown
    for ref in (ident, quote(shown)):
        found = client.get(f"{KB}/{ref}")
        assert found.status_code == 200 and found.json()["name"] == ident, found.text
        assert client.get(f"{KB}/{ref}/documents").json() == {"data": []}
    assert client.post(KB, json={"name": "矿井 通风"}).status_code == 409
    for lookalike in ("pаypal", "矿井\u202e通风"):
        refused = client.post(KB, json={"name": lookalike})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_name"
    assert client.delete(f"{KB}/{quote(shown)}").json() == {"deleted": True}
    assert client.get(f"{KB}/{ident}").status_code == 404
