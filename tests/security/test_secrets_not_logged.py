"""Checklist R25: passwords, API keys and prompts reach the server (right and wrong, through every
door, and through errors) yet none of them is written anywhere under BENDI_HOME: not the logs (at
debug level), not the server's stdout/stderr, not the audit, usage or accounts databases."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import httpx
import ollama
import pytest
from openai import OpenAI

from .conftest import MODEL, TeamServer

RUN = secrets.token_hex(6)
PASSWORD = f"Pw-canary-{RUN}-right"
WRONG_PASSWORD = f"Pw-canary-{RUN}-wrong"
NEW_PASSWORD = f"Pw-canary-{RUN}-new"
PROMPT = f"prompt-canary-{RUN}"
QUESTION = f"question-canary-{RUN}"
BAD_KEY_SECRET = f"keycanary{RUN}" + "Z" * 24
BAD_BEARER = f"bearer-canary-{RUN}"
USERNAME = f"canary{RUN[:6]}"  # not a secret: the positive control (it must be found)


def scan(home: Path, needles: dict[str, str]) -> dict[str, list[str]]:
    """Which needles occur in which files under `home` (raw bytes, every file)."""
    found: dict[str, list[str]] = {name: [] for name in needles}
    for path in sorted(home.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for name, needle in needles.items():
            if needle.encode() in data:
                found[name].append(str(path.relative_to(home)))
    return found


@pytest.fixture(scope="module")
def server(team_server_factory: Callable[..., TeamServer]) -> TeamServer:
    return team_server_factory(args=("--model", MODEL), env={"BENDI_LOG_LEVEL": "debug"})


def exercise_passwords(server: TeamServer) -> str:
    """Create, fail, succeed, change: returns the user's id."""
    with server.admin() as admin:
        made = admin.post("/v1/admin/users", json={"username": USERNAME, "password": PASSWORD})
        assert made.status_code == 201, made.text
    login = server.base_url + "/v1/auth/login"
    assert httpx.post(login, json={"username": USERNAME, "password": WRONG_PASSWORD}).status_code == 401
    assert httpx.post(login, json={"username": "no-such-user", "password": PASSWORD}).status_code == 401
    too_long = httpx.post(login, json={"username": USERNAME, "password": WRONG_PASSWORD * 100})
    assert too_long.status_code == 400  # a validation error must not echo the input into a log
    web = server.login(USERNAME, PASSWORD)
    short = web.send("POST", "/v1/auth/password", json={"current_password": PASSWORD, "new_password": "x"})
    assert short.status_code == 400
    changed = web.send("POST", "/v1/auth/password",
                       json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})  # fmt: skip
    assert changed.status_code == 200, changed.text
    server.login(USERNAME, NEW_PASSWORD)
    return str(made.json()["user"]["id"])


def exercise_keys_and_prompts(server: TeamServer, user_id: str) -> tuple[str, str]:
    """Use a real key for every kind of generation (and errors); present wrong keys. Returns the key."""
    with server.admin() as admin:
        made = admin.post("/v1/admin/keys", json={"user_id": user_id, "name": "canary", "scope": "inference"})
        assert made.status_code == 201, made.text
    key, key_id = made.json()["key"], made.json()["id"]
    client = OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0)
    messages = [{"role": "user", "content": f"Repeat after me: {PROMPT}"}]
    client.chat.completions.create(model=MODEL, messages=messages, max_tokens=3)  # type: ignore[arg-type]
    list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=3, stream=True))  # type: ignore[arg-type]
    client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=3)
    client.embeddings.create(model=MODEL, input=[PROMPT])
    local = ollama.Client(host=server.base_url, headers={"Authorization": f"Bearer {key}"})
    local.chat(model=MODEL, messages=messages, options={"num_predict": 3})
    local.generate(model=MODEL, prompt=PROMPT, options={"num_predict": 3})
    errors = {
        "unknown model": {"model": "no-such-model", "messages": messages},
        "bad parameter": {"model": MODEL, "messages": messages, "temperature": "hot"},
        "too long": {"model": MODEL, "messages": [{"role": "user", "content": (PROMPT + " ") * 400}]},
        "bad message": {"model": MODEL, "messages": [{"role": "wizard", "content": PROMPT}]},
    }
    with server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        for name, body in errors.items():
            answer = http.post("/v1/chat/completions", json=body)
            assert 400 <= answer.status_code < 500, (name, answer.text)
        broken = http.post("/v1/chat/completions", content=b'{"messages": "' + PROMPT.encode() + b'",',
                           headers={"Content-Type": "application/json"})  # fmt: skip
        assert broken.status_code == 400
    wrong_keys = [f"bendi_{key_id}_{BAD_KEY_SECRET}", f"bendi_0123456789ab_{BAD_KEY_SECRET}", BAD_BEARER]
    for wrong in wrong_keys:
        for headers in ({"Authorization": f"Bearer {wrong}"}, {"X-Api-Key": wrong}):
            answer = httpx.post(server.base_url + "/v1/chat/completions", headers=headers,
                                json={"model": MODEL, "messages": messages})  # fmt: skip
            assert answer.status_code == 401
    return key, key_id


def exercise_knowledge_base(server: TeamServer) -> None:
    with server.admin() as admin:
        made = admin.post("/v1/knowledge-bases", json={"name": f"canary-kb-{RUN}"})
        assert made.status_code == 201, made.text
        kb = made.json()["name"]
        searched = admin.post(f"/v1/knowledge-bases/{kb}/search", json={"query": QUESTION})
        assert searched.status_code < 500, searched.text
        asked = admin.post(f"/v1/knowledge-bases/{kb}/ask", json={"question": QUESTION, "max_tokens": 3})
        assert asked.status_code < 500, asked.text


def test_no_password_key_or_prompt_is_written_under_bendi_home(server: TeamServer) -> None:
    user_id = exercise_passwords(server)
    key, key_id = exercise_keys_and_prompts(server, user_id)
    exercise_knowledge_base(server)
    assert server.audit(actor=USERNAME)  # waits for the audit trail to be written
    assert server.process.stop() == 0  # every file is complete (WAL checkpointed, logs flushed)

    secret = key.split("_", 2)[2]
    needles = {
        "password": PASSWORD, "wrong password": WRONG_PASSWORD, "new password": NEW_PASSWORD,
        "key": key, "key secret": secret[-24:], "wrong key secret": BAD_KEY_SECRET, "wrong bearer": BAD_BEARER,
        "prompt": PROMPT, "question": QUESTION,
        "username": USERNAME, "key id": key_id,
    }  # fmt: skip
    found = scan(server.home, needles)
    # Positive controls: the scan does see the databases and the log (names and key ids are not secret).
    assert any(name.startswith("audit.sqlite3") for name in found.pop("username")), "audit DB not scanned"
    assert found.pop("key id"), "the key id is recorded somewhere (audit, usage)"
    assert "generation finished" in (server.home / "server-test.log").read_text(errors="replace")
    assert found == {name: [] for name in found}
