"""A preset bound to a knowledge base: any client that only knows model names gets answers grounded
in that base, with citations, through the existing knowledge-base chat path."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import ollama
import openai
import pytest

from server_process import ServerProcess

BASE = "smollm2:135m"
KB = "/v1/knowledge-bases"
REGULATION = """# 矿山安全法（节选）

第七条　矿山建设工程的安全设施必须和主体工程同时设计、同时施工、同时投入生产和使用。

第八条　矿山建设工程的设计文件，必须符合矿山安全规程和行业技术规范，并按照国家规定经管理矿山企业的主管部门批准。
"""
QUESTION = "矿山建设工程的安全设施必须和主体工程同时设计吗？"


@pytest.fixture(scope="module")
def server(bendi_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return bendi_server_factory(env={"BENDI_CONTEXT_TOKENS": "2048"}, args=("--model", BASE))


@pytest.fixture(scope="module")
def mining(server: ServerProcess) -> str:
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        assert client.post(KB, json={"name": "mining"}).status_code == 201
        files = [("files", ("矿山安全法.md", REGULATION.encode(), "text/markdown"))]
        assert client.post(KB + "/mining/documents", files=files).status_code == 202
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            docs = client.get(KB + "/mining/documents").json()["data"]
            if docs and all(d["status"] == "indexed" for d in docs):
                return "mining"
            assert not any(d["status"] == "failed" for d in docs), docs
            time.sleep(0.5)
    raise AssertionError("the regulation was not indexed in time")


def test_chat_with_a_knowledge_preset_cites_the_base(server: ServerProcess, mining: str) -> None:
    ol = ollama.Client(host=server.base_url, timeout=240)
    # `knowledge_base` is bendi's own field (the ollama client has no argument for it): sent as JSON.
    created = httpx.post(server.base_url + "/api/create", timeout=60, json={
        "model": "safety-assistant", "from": BASE, "system": "你是安全办公室的助手。", "stream": False,
        "parameters": {"num_predict": 12}, "knowledge_base": mining})  # fmt: skip
    assert created.json() == {"status": "success"}
    assert ol.show("safety-assistant").details.parent_model == BASE  # type: ignore[union-attr]
    shown = httpx.post(server.base_url + "/api/show", json={"model": "safety-assistant"}).json()
    assert shown["knowledge_base"] == "mining" and "KNOWLEDGE mining" in shown["modelfile"]

    oa = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", timeout=240)
    answer = oa.chat.completions.create(
        model="safety-assistant", messages=[{"role": "user", "content": QUESTION}]
    )
    citations = (answer.model_extra or {})["citations"]
    assert citations and citations[0]["file"] == "矿山安全法.md", citations
    assert "同时设计" in citations[0]["text"] and citations[0]["article"] == "第七条", citations
    assert answer.choices[0].message.content
    assert answer.usage is not None and 1 <= answer.usage.completion_tokens <= 12  # the preset's num_predict

    raw = httpx.post(server.base_url + "/api/chat", timeout=240, json={
        "model": "safety-assistant", "stream": False, "messages": [{"role": "user", "content": QUESTION}]}).json()  # fmt: skip
    assert raw["done"] is True and raw["citations"][0]["article"] == "第七条"
    # A plain chat with the base model is not grounded: no citations.
    plain = oa.chat.completions.create(
        model=BASE, max_tokens=4, messages=[{"role": "user", "content": QUESTION}]
    )
    assert "citations" not in (plain.model_extra or {})
