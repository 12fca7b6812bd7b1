"""Object-level authorization matrix (checklist R5, R23): user B, in another department, calls every
route that takes an object with user A's identifiers, to read and to write: 404 (or 403 on routes
that are administrators' only), and nothing of A's changes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bendi.core.settings import load_settings
from bendi.gateway.app import create_app
from bendi.services import Services, build_services

CANARY = "ZX-7731 巷道瓦斯浓度上限"
EXAMPLE = {"question": f"{CANARY}是多少？", "citations": [{"document": "a.md", "quote": CANARY}]}


class Party:
    """One caller: with an API key, or (key None) with the session cookie its client holds."""

    def __init__(self, client: TestClient, key: str | None, csrf: str = "") -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"} if key else {"X-CSRF-Token": csrf}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.client.request(method, path, headers=self.headers, json=body)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("idor-home")
    services: Services = build_services(load_settings(home=home, threads=2))
    access = services.access
    admin, _ = access.init_team("root", "root-password-1")
    tongfeng = access.accounts.create_department("通风科")
    jidian = access.accounts.create_department("机电科")
    user_a, _ = access.accounts.create_user("alice", role="kb-editor", password="alice-password-1",
                                            departments=[tongfeng.id])  # fmt: skip
    user_b, _ = access.accounts.create_user("bob", role="kb-editor", password="bob-password-1",
                                            departments=[jidian.id])  # fmt: skip
    key_a, info_a = access.keys.create(user_a, name="a", scope="kb:write")
    key_b, _ = access.keys.create(user_b, name="b", scope="kb:write")
    with TestClient(create_app(services), base_url="http://127.0.0.1") as client:
        a, b = Party(client, key_a), Party(client, key_b)
        b_browser = TestClient(client.app, base_url="http://127.0.0.1")  # type: ignore[arg-type]
        signed_in = b_browser.post("/v1/auth/login", json={"username": "bob", "password": "bob-password-1"})
        assert signed_in.status_code == 200, signed_in.text
        b_session = Party(b_browser, None, signed_in.json()["csrf_token"])
        created = a.call("POST", "/v1/knowledge-bases", {"name": "a-kb", "description": "A's"})
        assert created.status_code == 201, created.text
        kb = created.json()["name"]
        upload = client.post(f"/v1/knowledge-bases/{kb}/documents", headers=a.headers,
                             files={"files": ("a.md", f"# 第一条\n{CANARY}\n".encode(), "text/markdown")})  # fmt: skip
        assert upload.status_code == 202, upload.text
        doc_id = upload.json()["data"][0]["id"]
        _wait_indexed(a, kb)
        added = a.call("POST", f"/v1/knowledge-bases/{kb}/examples", {"examples": [EXAMPLE]})
        assert added.status_code == 201, added.text
        example_id = a.call("GET", f"/v1/knowledge-bases/{kb}/examples").json()["data"][0]["id"]
        grant = a.call(
            "POST", f"/v1/knowledge-bases/{kb}/access", {"department": "通风科", "permission": "read"}
        )
        assert grant.status_code == 201, grant.text
        conversation = a.call("POST", "/v1/conversations", {"title": "A's chat"}).json()
        a.call(
            "POST", f"/v1/conversations/{conversation['id']}/messages", {"role": "user", "content": CANARY}
        )
        message_id = a.call("GET", f"/v1/conversations/{conversation['id']}").json()["messages"][0]["id"]
        yield {"services": services, "a": a, "b": b, "b_session": b_session, "kb": kb, "doc_id": doc_id, "grant_id": grant.json()["id"],
               "conversation": conversation["id"], "message_id": message_id, "key_a": info_a.id,
               "user_a": user_a.id, "admin": admin, "example_id": example_id}  # fmt: skip


def _wait_indexed(a: Party, kb: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        docs = a.call("GET", f"/v1/knowledge-bases/{kb}/documents").json()["data"]
        if docs and all(d["status"] == "indexed" for d in docs):
            return
        time.sleep(0.2)
    raise AssertionError(f"the upload was not indexed: {docs}")


def _snapshot(world: dict[str, Any]) -> dict[str, Any]:
    a: Party = world["a"]
    kb, conv = world["kb"], world["conversation"]
    return {
        # (the uploaded document may still be indexing: chunk counts move on their own)
        "kb": {k: v for k, v in a.call("GET", f"/v1/knowledge-bases/{kb}").json().items() if k != "chunks"},
        "docs": [d["id"] for d in a.call("GET", f"/v1/knowledge-bases/{kb}/documents").json()["data"]],
        "access": a.call("GET", f"/v1/knowledge-bases/{kb}/access").json()["grants"],
        "examples": a.call("GET", f"/v1/knowledge-bases/{kb}/examples").json()["data"],
        "conversation": a.call("GET", f"/v1/conversations/{conv}").json(),
        "keys": [(k["id"], k["active"]) for k in a.call("GET", "/v1/auth/keys").json()["data"]],
    }


def test_b_cannot_reach_any_of_a_s_objects(world: dict[str, Any]) -> None:
    b: Party = world["b"]
    kb, doc, conv = world["kb"], world["doc_id"], world["conversation"]
    before = _snapshot(world)
    matrix: list[tuple[str, str, Any, tuple[int, ...]]] = [
        # knowledge base, its documents and its access list
        ("GET", f"/v1/knowledge-bases/{kb}", None, (404,)),
        ("DELETE", f"/v1/knowledge-bases/{kb}", None, (404,)),
        ("GET", f"/v1/knowledge-bases/{kb}/documents", None, (404,)),
        ("GET", f"/v1/knowledge-bases/{kb}/documents/{doc}", None, (404,)),
        ("DELETE", f"/v1/knowledge-bases/{kb}/documents/{doc}", None, (404,)),
        ("POST", f"/v1/knowledge-bases/{kb}/search", {"query": CANARY}, (404,)),
        ("POST", f"/v1/knowledge-bases/{kb}/ask", {"question": CANARY}, (404,)),
        ("GET", f"/v1/knowledge-bases/{kb}/access", None, (404,)),
        ("POST", f"/v1/knowledge-bases/{kb}/access", {"department": "机电科", "permission": "write"}, (404,)),
        ("DELETE", f"/v1/knowledge-bases/{kb}/access/{world['grant_id']}", None, (404,)),
        ("GET", f"/v1/knowledge-bases/{kb}/examples", None, (404,)),
        ("POST", f"/v1/knowledge-bases/{kb}/examples", {"examples": [EXAMPLE]}, (404,)),
        ("DELETE", f"/v1/knowledge-bases/{kb}/examples/{world['example_id']}", None, (404,)),
        # the same base reached through the chat APIs' model names and fields
        ("POST", "/v1/chat/completions", {"model": f"kb:{kb}", "messages": [{"role": "user", "content": CANARY}]}, (404,)),
        ("POST", "/v1/chat/completions", {"model": "smollm2:135m", "knowledge_base": kb,
                                          "messages": [{"role": "user", "content": CANARY}]}, (404,)),
        ("POST", "/api/chat", {"model": f"kb:{kb}", "messages": [{"role": "user", "content": CANARY}]}, (404,)),
        # conversations
        ("GET", f"/v1/conversations/{conv}", None, (404,)),
        ("PATCH", f"/v1/conversations/{conv}", {"title": "taken"}, (404,)),
        ("DELETE", f"/v1/conversations/{conv}", None, (404,)),
        ("POST", f"/v1/conversations/{conv}/messages", {"role": "user", "content": "x"}, (404,)),
        ("DELETE", f"/v1/conversations/{conv}/messages/{world['message_id']}", None, (404,)),
        # keys and users
        ("DELETE", f"/v1/auth/keys/{world['key_a']}", None, (404,)),
        ("GET", f"/v1/admin/users/{world['user_a']}", None, (403, 404)),
        ("PATCH", f"/v1/admin/users/{world['user_a']}", {"disabled": True}, (403, 404)),
        ("DELETE", f"/v1/admin/users/{world['user_a']}", None, (403, 404)),
        ("POST", f"/v1/admin/users/{world['user_a']}/password", None, (403, 404)),
        ("DELETE", f"/v1/admin/keys/{world['key_a']}", None, (403, 404)),
        # model pulls are administrators' business
        ("DELETE", "/v1/pulls/smollm2:135m", None, (403, 404)),
        ("DELETE", "/api/delete", {"model": "smollm2:135m"}, (403, 404)),
    ]  # fmt: skip
    wrong = []
    for caller in (b, world["b_session"]):  # with B's API key, then signed in as B in a browser
        for method, path, body, allowed in matrix:
            response = caller.call(method, path, body)
            # a key may not manage keys at all (403 before any lookup); the session gets the 404
            ok = allowed + (403,) if path.startswith("/v1/auth/keys/") and caller is b else allowed
            if response.status_code not in ok:
                wrong.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            assert CANARY not in response.text
    assert not wrong, "\n".join(wrong)
    # listings show B nothing of A's
    assert kb not in [k["name"] for k in b.call("GET", "/v1/knowledge-bases").json()["data"]]
    assert conv not in [c["id"] for c in b.call("GET", "/v1/conversations").json()["data"]]
    assert b.call("GET", f"/v1/conversations?q={CANARY}").json()["data"] == []
    assert _snapshot(world) == before


def test_a_missing_base_and_a_hidden_base_answer_alike(world: dict[str, Any]) -> None:
    b: Party = world["b"]
    hidden = b.call("GET", f"/v1/knowledge-bases/{world['kb']}")
    missing = b.call("GET", "/v1/knowledge-bases/no-such-base")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"].replace(world["kb"], "X") == missing.json()["error"][
        "message"
    ].replace("no-such-base", "X")


def test_a_department_grant_opens_the_base_to_its_members_only(world: dict[str, Any]) -> None:
    services: Services = world["services"]
    access = services.access
    carol, _ = access.accounts.create_user("carol", password="carol-password-1", departments=["通风科"])
    key_c, _ = access.keys.create(carol, name="c", scope="kb:write")
    c = Party(world["a"].client, key_c)
    kb = world["kb"]
    assert c.call("GET", f"/v1/knowledge-bases/{kb}").status_code == 200
    assert kb in [k["name"] for k in c.call("GET", "/v1/knowledge-bases").json()["data"]]
    # read access: listing yes, changing no (403: carol can see the base, so hiding it is moot)
    assert c.call("DELETE", f"/v1/knowledge-bases/{kb}/documents/{world['doc_id']}").status_code == 403
    assert c.call("DELETE", f"/v1/knowledge-bases/{kb}").status_code == 403
    assert c.call("GET", f"/v1/knowledge-bases/{kb}/access").status_code == 403
    assert c.call("GET", f"/v1/knowledge-bases/{kb}/documents").status_code == 200
    # reading a base's answered examples is reading it; changing them is writing it
    listed = c.call("GET", f"/v1/knowledge-bases/{kb}/examples?limit=1").json()
    assert (listed["total"], listed["data"][0]["question"]) == (1, EXAMPLE["question"])
    assert c.call("POST", f"/v1/knowledge-bases/{kb}/examples", {"examples": [EXAMPLE]}).status_code == 403
    assert c.call("DELETE", f"/v1/knowledge-bases/{kb}/examples/{world['example_id']}").status_code == 403
