"""Server logs are JSON lines with counts and timings, never the prompt, the answer or the API key."""

from __future__ import annotations

import json

import httpx

KEY = "sk-test-secret-4711"
PROMPT = "The secret passphrase is zebra-mango-42."


def test_logs_are_json_lines_without_prompts_or_keys(bendi_server_factory) -> None:  # type: ignore[no-untyped-def]
    server = bendi_server_factory(env={"BENDI_API_KEY": KEY}, args=("--model", "smollm2:135m"))
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "smollm2:135m", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8}
    answer = httpx.post(server.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert answer.status_code == 200
    reply = answer.json()["choices"][0]["message"]["content"]
    ollama = {"model": "smollm2:135m", "prompt": PROMPT, "stream": False, "options": {"num_predict": 4}}
    assert (
        httpx.post(server.base_url + "/api/generate", json=ollama, headers=headers, timeout=60).status_code
        == 200
    )
    assert httpx.get(server.base_url + f"/v1/models?key={KEY}").status_code == 401

    text = server.log_path.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    finished = [r for r in records if r["msg"] == "generation finished"]
    assert len(finished) == 2 and all(r["completion_tokens"] > 0 and r["prompt_tokens"] > 0 for r in finished)
    assert {r["route"] for r in records if r["msg"] == "request"} >= {"/v1/chat/completions", "/api/generate"}
    assert all(r["client"].startswith("key:") for r in finished)
    for secret in (KEY, "zebra-mango", reply.strip()[:20] if len(reply.strip()) >= 8 else KEY):
        assert secret not in text
