"""Quotas set by an administrator (PATCH /v1/admin/users/{id}) hold at once: requests per minute
and tokens per day answer 429 with Retry-After and an OpenAI-shaped error naming the limit; other
users are not affected; a user cannot escape a limit with a second key or the Ollama API."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai import OpenAI

from .conftest import MODEL, Member, TeamServer

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


def chat(server: TeamServer, member: Member | str) -> httpx.Response:
    key = member.key if isinstance(member, Member) else member
    return httpx.post(server.base_url + "/v1/chat/completions", json=CHAT,
                      headers={"Authorization": f"Bearer {key}"}, timeout=60)  # fmt: skip


def set_limits(server: TeamServer, member: Member, **limits: int) -> None:
    with server.admin() as admin:
        answer = admin.patch(f"/v1/admin/users/{member.id}", json=limits)
    assert answer.status_code == 200, answer.text
    assert {name: answer.json()[name] for name in limits} == {k: v or None for k, v in limits.items()}


def refused(answer: httpx.Response) -> tuple[int, str]:
    """(Retry-After, message) of a quota refusal, checking its OpenAI shape."""
    assert answer.status_code == 429, answer.text
    error = answer.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    retry_after = answer.headers["Retry-After"]
    assert retry_after.isdigit(), retry_after
    return int(retry_after), str(error["message"])


def extra_key(server: TeamServer, member: Member) -> str:
    with server.admin() as admin:
        made = admin.post(
            "/v1/admin/keys", json={"user_id": member.id, "name": "second", "scope": "inference"}
        )
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def test_requests_per_minute(model_server: TeamServer) -> None:
    limited, other = model_server.add_user("rpm"), model_server.add_user("free")
    set_limits(model_server, limited, requests_per_minute=2)
    assert [chat(model_server, limited).status_code for _ in range(2)] == [200, 200]
    retry_after, message = refused(chat(model_server, limited))
    assert 1 <= retry_after <= 60
    assert "2 per minute" in message
    # The limit belongs to the person: another key, the Ollama API and embeddings are held too.
    refused(chat(model_server, extra_key(model_server, limited)))
    ollama_answer = httpx.post(model_server.base_url + "/api/chat", headers=limited.bearer,
                               json={**CHAT, "stream": False, "options": {"num_predict": 2}})  # fmt: skip
    assert ollama_answer.status_code == 429 and ollama_answer.headers["Retry-After"].isdigit()
    refused(httpx.post(model_server.base_url + "/v1/embeddings", headers=limited.bearer,
                       json={"model": MODEL, "input": "x"}))  # fmt: skip
    with pytest.raises(openai.RateLimitError):
        OpenAI(
            base_url=model_server.base_url + "/v1", api_key=limited.key, max_retries=0
        ).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    # Reads are not generation: the limited user can still list models.
    assert httpx.get(model_server.base_url + "/v1/models", headers=limited.bearer).status_code == 200
    # Someone else is unaffected.
    assert [chat(model_server, other).status_code for _ in range(3)] == [200, 200, 200]
    # Lifting the limit takes effect on the next request.
    set_limits(model_server, limited, requests_per_minute=0)
    assert chat(model_server, limited).status_code == 200


def test_tokens_per_day_until_midnight_utc(model_server: TeamServer) -> None:
    limited, other = model_server.add_user("tpd"), model_server.add_user("free")
    set_limits(model_server, limited, tokens_per_day=5)
    first = chat(model_server, limited)  # admitted while the budget is not used up; it then is
    assert first.status_code == 200, first.text
    assert first.json()["usage"]["total_tokens"] >= 5
    model_server.audit(action="none")  # waits until the server's usage and audit writes are done
    answer = chat(model_server, limited)
    now = time.time()
    retry_after, message = refused(answer)
    until_midnight = (now // 86400 + 1) * 86400 - now
    assert abs(retry_after - until_midnight) <= 5, (retry_after, until_midnight)
    assert "token" in message and "midnight UTC" in message
    refused(chat(model_server, extra_key(model_server, limited)))
    assert chat(model_server, other).status_code == 200
    set_limits(model_server, limited, tokens_per_day=0)
    assert chat(model_server, limited).status_code == 200
