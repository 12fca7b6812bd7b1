"""Prompt and answer text reach the audit log only where the organization turned it on
(settings.audit_record_text); by default the record holds who, what route, model and token counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bendi.core.settings import load_settings
from bendi.gateway.app import create_app
from bendi.services import build_services

CANARY = "QX-5512 掘进工作面"


@pytest.mark.parametrize("record_text", [True, False])
def test_chat_text_is_audited_only_when_asked(tmp_path: Path, record_text: bool) -> None:
    services = build_services(load_settings(home=tmp_path, threads=2, context_tokens=512,
                                            audit_record_text=record_text))  # fmt: skip
    admin, _ = services.init_team("root", "root-password-1")
    key, _ = services.access.keys.create(admin, name="k", scope="admin")
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(services), base_url="http://127.0.0.1") as client:
        reply = client.post("/v1/chat/completions", headers=headers, json={
            "model": "smollm2:135m", "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": f"Repeat: {CANARY}"}]})  # fmt: skip
        assert reply.status_code == 200, reply.text
        answer = reply.json()["choices"][0]["message"]["content"]
        records = client.get("/v1/admin/audit?since=1h&action=http.request", headers=headers).json()["data"]
    chat = next(r for r in records if r["route"] == "/v1/chat/completions")
    assert chat["model"] == "smollm2:135m" and chat["completion_tokens"] > 0 and chat["actor"] == "root"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("audit.sqlite3*"))  # the WAL too
    if record_text:
        assert CANARY in chat["detail"]["text"] and chat["detail"]["answer"] == answer
        assert CANARY.encode() in stored  # the scan below would see it
    else:
        assert "text" not in chat["detail"] and "answer" not in chat["detail"]
        assert CANARY.encode() not in stored
