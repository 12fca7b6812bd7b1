"""Team mode with the official clients: per-user keys work in `openai` and `ollama`, nothing works
without one, a member's inference key cannot administer or pull models, and every generation lands
in the usage report and the audit log with its model and token counts."""

from __future__ import annotations

import httpx
import ollama
import openai
import pytest
from openai import OpenAI

from .conftest import MODEL, Member, TeamServer


@pytest.fixture(scope="module")
def member(model_server: TeamServer) -> Member:
    return model_server.add_user("alice")


def openai_client(server: TeamServer, key: str) -> OpenAI:
    return OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0)


def keyless_openai_client(server: TeamServer) -> OpenAI:
    """The official client with its Authorization header taken off every request: no key at all."""

    def strip(request: httpx.Request) -> None:
        del request.headers["Authorization"]

    http = httpx.Client(event_hooks={"request": [strip]})
    return OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, http_client=http)


def test_openai_client_chat_stream_and_embeddings_with_a_member_key(
    model_server: TeamServer, member: Member
) -> None:
    client = openai_client(model_server, member.key)
    assert MODEL in [m.id for m in client.models.list().data]
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4, temperature=0
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Count: 1, 2,"}], max_tokens=4, stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    vectors = client.embeddings.create(model=MODEL, input=["coal mine", "gas"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 0


def test_ollama_client_chat_and_list_with_a_member_key(model_server: TeamServer, member: Member) -> None:
    client = ollama.Client(host=model_server.base_url, headers=member.bearer)
    assert MODEL in [m.model for m in client.list().models]
    answer = client.chat(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 4}
    )
    assert answer.done and answer.message.content
    streamed = list(client.chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True,
                                options={"num_predict": 4}))  # fmt: skip
    assert streamed[-1].done


def test_no_key_or_a_wrong_key_is_refused_with_401(model_server: TeamServer, member: Member) -> None:
    clients = [keyless_openai_client(model_server)] + [
        openai_client(model_server, key)
        for key in ("not-a-key", member.key[:-2] + "xx", "bendi_000000000000_" + "A" * 43)
    ]
    for client in clients:
        with pytest.raises(openai.AuthenticationError) as refused:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2
            )
        assert refused.value.status_code == 401
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=model_server.base_url).chat(
            model=MODEL, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.status_code == 401
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=model_server.base_url).list()
    assert refused.value.status_code == 401
    bare = httpx.get(model_server.base_url + "/v1/models")
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "authentication_required"
    assert httpx.get(model_server.base_url + "/health").status_code == 200  # liveness stays public


ADMIN_ONLY = [
    ("GET", "/v1/admin/users", None),
    ("POST", "/v1/admin/users", {"username": "mallory", "password": "Mallory-pass-1", "role": "admin"}),
    ("GET", "/v1/admin/keys", None),
    ("GET", "/v1/admin/usage", None),
    ("GET", "/v1/admin/audit", None),
    ("GET", "/v1/admin/audit/export", None),
    ("GET", "/metrics", None),
    ("POST", "/api/pull", {"model": "qwen3:0.6b"}),
    ("DELETE", "/api/delete", {"model": MODEL}),
    ("GET", "/v1/pulls", None),
    ("POST", "/v1/pulls", {"model": "qwen3:0.6b"}),
    ("DELETE", "/v1/pulls/qwen3:0.6b", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY, ids=[f"{m} {p}" for m, p, _ in ADMIN_ONLY])
def test_a_member_key_cannot_administer_or_manage_models(
    model_server: TeamServer, member: Member, method: str, path: str, body: object
) -> None:
    with model_server.client(headers=member.bearer) as client:
        answer = client.request(method, path, json=body)
    assert answer.status_code == 403, answer.text
    with model_server.admin() as admin:  # and the administrator may (so the 403 is about who asks)
        assert admin.get("/v1/admin/users").status_code == 200


def test_an_administrators_inference_key_is_not_an_admin_key(model_server: TeamServer) -> None:
    admin = model_server.add_user("chief", role="admin", scope="inference")
    with model_server.client(headers=admin.bearer) as client:
        assert client.get("/v1/admin/users").status_code == 403
        assert client.post("/v1/pulls", json={"model": "qwen3:0.6b"}).status_code == 403
        assert client.post("/v1/auth/keys", json={"name": "escalate", "scope": "admin"}).status_code == 403
        assert client.get("/v1/models").status_code == 200


def test_a_member_session_cannot_administer_either(model_server: TeamServer, member: Member) -> None:
    web = model_server.login(member.username, member.password)
    assert web.send("GET", "/v1/admin/users").status_code == 403
    assert web.send("POST", "/v1/pulls", json={"model": "qwen3:0.6b"}).status_code == 403
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=model_server.base_url, headers=member.bearer).pull("qwen3:0.6b")
    assert refused.value.status_code == 403
    models = httpx.get(model_server.base_url + "/api/tags", headers=member.bearer).json()["models"]
    assert [m["name"] for m in models] == [MODEL]  # nothing was pulled or deleted
    # The refusals are in the audit log, under the member's name.
    refusals = {(r["method"], r["route"], r["status"]) for r in model_server.audit(actor=member.username)}
    assert {
        ("GET", "/v1/admin/users", 403),
        ("POST", "/v1/pulls", 403),
        ("POST", "/api/pull", 403),
    } <= refusals


def test_usage_and_audit_record_the_members_chat(model_server: TeamServer) -> None:
    bob = model_server.add_user("bob")
    reply = openai_client(model_server, bob.key).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=3, temperature=0
    )
    assert reply.usage is not None
    prompt, completion = reply.usage.prompt_tokens, reply.usage.completion_tokens
    assert prompt > 0 and completion > 0

    records = model_server.audit(actor=bob.username, action="http.request")  # flushes the trail
    chats = [r for r in records if r["route"] == "/v1/chat/completions"]
    assert len(chats) == 1, records
    chat = chats[0]
    assert chat["status"] == 200 and chat["method"] == "POST"
    assert chat["model"] == MODEL and chat["key_id"] == bob.key_id and chat["user_id"] == bob.id
    assert (chat["prompt_tokens"], chat["completion_tokens"]) == (prompt, completion)

    with model_server.admin() as admin:  # the audit query above waited for the usage write too
        answer = admin.get("/v1/admin/usage", params={"since": "1d", "group_by": "user,key,model"})
        verdict = admin.get("/v1/admin/audit/verify").json()
    assert answer.status_code == 200, answer.text
    rows = [r for r in answer.json()["data"] if r["user_id"] == bob.id]
    assert verdict["ok"] is True and verdict["records"] > 0, verdict
    assert rows == [{"day": None, "user_id": bob.id, "username": bob.username, "key_id": bob.key_id,
                     "model": MODEL, "requests": 1, "prompt_tokens": prompt, "completion_tokens": completion,
                     "total_tokens": prompt + completion}]  # fmt: skip
