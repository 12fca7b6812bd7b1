"""Presets in team mode: making and removing them is an administrator's change (route rules), audited;
a member sees and uses them but cannot create or delete one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

import team_home
from server_process import ServerProcess, free_port

BASE = "smollm2:135m"


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    home: Path = tmp_path_factory.mktemp("presets-team")
    admin_key = team_home.init_team_home(home, "boss", "Adm1n-pass-for-tests")
    process = ServerProcess(home, free_port(), {"BENDI_CONTEXT_TOKENS": "1024"}, ("--model", BASE))
    try:
        process.wait_ready(timeout_s=90)
        yield process, admin_key
    finally:
        process.stop()


def _member_key(base_url: str, admin_key: str) -> str:
    admin = {"Authorization": f"Bearer {admin_key}"}
    user = httpx.post(base_url + "/v1/admin/users", headers=admin,
                      json={"username": "miner", "password": "Member-pass-0001", "role": "member"})  # fmt: skip
    assert user.status_code == 201, user.text
    key = httpx.post(base_url + "/v1/admin/keys", headers=admin,
                     json={"user_id": user.json()["user"]["id"], "name": "k", "scope": "inference"})  # fmt: skip
    assert key.status_code == 201, key.text
    return str(key.json()["key"])


def test_only_administrators_create_and_delete_presets(team: tuple[ServerProcess, str]) -> None:
    server, admin_key = team
    member_key = _member_key(server.base_url, admin_key)
    member = ollama.Client(host=server.base_url, headers={"Authorization": f"Bearer {member_key}"})
    with pytest.raises(ollama.ResponseError) as refused:
        member.create(model="mine", from_=BASE, system="x")
    assert refused.value.status_code == 403
    anonymous = httpx.post(server.base_url + "/api/create", json={"model": "anon", "from": BASE})
    assert anonymous.status_code == 401

    admin = ollama.Client(host=server.base_url, headers={"Authorization": f"Bearer {admin_key}"})
    assert admin.create(model="office", from_=BASE, system="You serve the safety office.").status == "success"
    # A member sees the preset and chats with it (inference), but cannot remove it.
    assert "office:latest" in [m.model for m in member.list().models]
    chat = openai.OpenAI(base_url=server.base_url + "/v1", api_key=member_key).chat.completions.create(
        model="office", max_tokens=2, messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert chat.usage is not None and chat.usage.completion_tokens >= 1
    with pytest.raises(ollama.ResponseError) as kept:
        member.delete("office")
    assert kept.value.status_code == 403
    assert "office:latest" in [m.model for m in admin.list().models]

    admin.delete("office")
    audit = httpx.get(server.base_url + "/v1/admin/audit", params={"since": "1d", "limit": "1000"},
                      headers={"Authorization": f"Bearer {admin_key}"}).json()["data"]  # fmt: skip
    actions = {r["action"]: r for r in audit}
    assert actions["preset.create"]["actor"] == "boss"
    assert actions["preset.create"]["detail"]["base"] == BASE
    assert "preset.delete" in actions
    assert not any(r["action"] == "preset.create" and r["actor"] == "miner" for r in audit)
