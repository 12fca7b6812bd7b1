"""Server side of the UI without a browser: conversations API, static files and their headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bendi.core.settings import Settings
from bendi.gateway.app import create_app
from bendi.services import build_services


@pytest.fixture()
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(build_services(settings)), base_url="http://127.0.0.1") as test_client:
        yield test_client


def _conversation(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/conversations", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_conversation_lifecycle(client: TestClient) -> None:
    conv = _conversation(
        client, title="矿井通风", model="smollm2:135m", system_prompt="简洁回答", temperature=0.3
    )
    assert conv["messages"] == [] and conv["temperature"] == 0.3
    first = client.post(
        f"/v1/conversations/{conv['id']}/messages", json={"role": "user", "content": "瓦斯?"}
    ).json()
    answer = client.post(
        f"/v1/conversations/{conv['id']}/messages",
        json={"role": "assistant", "content": "1.0% [1]", "reasoning": "想一想", "model": "m",
              "citations": [{"index": 1, "file": "规程.docx", "page": 3, "article": "第十条", "text": "…"}]},
    ).json()  # fmt: skip
    stored = client.get(f"/v1/conversations/{conv['id']}").json()
    assert [m["id"] for m in stored["messages"]] == [first["id"], answer["id"]]
    assert stored["messages"][1]["citations"][0]["article"] == "第十条"
    assert stored["messages"][1]["reasoning"] == "想一想"
    renamed = client.patch(
        f"/v1/conversations/{conv['id']}", json={"title": "通风", "temperature": None}
    ).json()
    assert (
        renamed["title"] == "通风"
        and renamed["temperature"] is None
        and renamed["system_prompt"] == "简洁回答"
    )
    # Truncating at the first message drops it and everything after (edit-and-resend).
    assert client.delete(f"/v1/conversations/{conv['id']}/messages/{first['id']}").json()["messages"] == []
    assert client.delete(f"/v1/conversations/{conv['id']}").json()["deleted"] is True
    assert client.get(f"/v1/conversations/{conv['id']}").status_code == 404


def test_search_is_literal_and_newest_first(client: TestClient) -> None:
    old = _conversation(client, title="100% coverage")
    new = _conversation(client, title="other")
    client.post(f"/v1/conversations/{new['id']}/messages", json={"role": "user", "content": "a_b"})
    everything = [c["id"] for c in client.get("/v1/conversations").json()["data"]]
    assert everything == [new["id"], old["id"]]
    assert [c["id"] for c in client.get("/v1/conversations", params={"q": "%"}).json()["data"]] == [old["id"]]
    assert [c["id"] for c in client.get("/v1/conversations", params={"q": "a_b"}).json()["data"]] == [
        new["id"]
    ]
    assert client.get("/v1/conversations", params={"q": "_"}).json()["data"][0]["message_count"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [({"temperature": 3}, "temperature"), ({"context_tokens": 5}, "context_tokens"), ({"title": "x" * 201}, "title"),
     ({"unknown": 1}, "unknown")],
)  # fmt: skip
def test_bad_conversation_fields_are_400(client: TestClient, body: dict[str, Any], field: str) -> None:
    response = client.post("/v1/conversations", json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == field


def test_messages_are_validated(client: TestClient) -> None:
    conv = _conversation(client)
    bad_role = client.post(f"/v1/conversations/{conv['id']}/messages", json={"role": "tool", "content": "x"})
    assert bad_role.status_code == 400
    missing = client.post("/v1/conversations/nope/messages", json={"role": "user", "content": "x"})
    assert missing.status_code == 404 and "does not exist" in missing.json()["error"]["message"]
    assert client.delete(f"/v1/conversations/{conv['id']}/messages/nope").status_code == 404


def test_static_files_carry_csp_and_revalidate(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module" src="js/app.js">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["cache-control"] == "no-cache"
    assert client.get("/", headers={"If-None-Match": page.headers["etag"]}).status_code == 304
    script = client.get("/js/app.js")
    assert (
        script.headers["content-type"].startswith("text/javascript")
        and "content-security-policy" in script.headers
    )
    assert client.get("/i18n/zh-CN.json").json()["nav.chat"] == "对话"
    # No inline script or style anywhere in the page (the CSP would block it).
    import re

    assert "<script>" not in page.text and "style=" not in page.text
    assert re.search(r"\son[a-z]+\s*=", page.text) is None  # no inline event handlers


@pytest.mark.parametrize(
    "path", ["/js/../routes.py", "/js/%2e%2e/routes.py", "/css/..%2f..%2f__init__.py", "/js/nope.js"]
)
def test_static_paths_cannot_escape(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_ui_does_not_shadow_api_errors(client: TestClient) -> None:
    assert client.get("/v1/nothing-here").status_code == 404
    assert client.post("/v1/nothing-here").status_code == 404
    assert "error" in client.get("/api/nothing-here").json()


def test_pull_registry_attaches_and_cancels(bendi_home: Any, smollm2_path: Any) -> None:
    import sys
    import time
    from pathlib import Path

    from bendi.core.settings import load_settings

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
    from fakehub import FakeHub

    with FakeHub() as hub:
        hub.state.add("t/SmolLM2", "m-Q4_1.gguf", smollm2_path)
        hub.state.throttle_bytes_per_s = 2e6  # slow: the pull is still running when we cancel it
        settings = load_settings(home=bendi_home, hf_endpoint=hub.endpoint, modelscope_endpoint=hub.endpoint,
                                 mirrors=(hub.mirror,), allowed_hosts=(hub.cdn_host,), download_connections=1)  # fmt: skip
        with TestClient(create_app(build_services(settings)), base_url="http://127.0.0.1") as client:
            assert client.post("/v1/pulls", json={"model": "../x"}).status_code == 400
            started = client.post("/v1/pulls", json={"model": "hf:t/SmolLM2/m-Q4_1.gguf"})
            assert started.status_code == 202 and started.json()["active"]
            again = client.post("/v1/pulls", json={"model": "hf:t/SmolLM2/m-Q4_1.gguf"}).json()
            assert again["started_at"] == started.json()["started_at"]  # attached, not a second download
            deadline = time.monotonic() + 20
            while (
                client.get("/v1/pulls").json()["data"][0]["completed_bytes"] == 0
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            assert client.delete("/v1/pulls/hf:t/SmolLM2/m-Q4_1.gguf").status_code == 200
            while client.get("/v1/pulls").json()["data"][0]["active"] and time.monotonic() < deadline:
                time.sleep(0.05)
            final = client.get("/v1/pulls").json()["data"][0]
            assert (
                final["status"] == "cancelled" and 0 < final["completed_bytes"] < smollm2_path.stat().st_size
            )
            assert client.delete("/v1/pulls/hf:t/SmolLM2/m-Q4_1.gguf").status_code == 404
