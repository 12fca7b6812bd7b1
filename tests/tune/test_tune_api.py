"""Tuning over HTTP on a real `bendi serve` (POST /api/tune): a run stopped with DELETE (the trainer
checkpoints), resumed with "resume": true, its preset served at once through the openai client;
and the requests refused before anything runs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from mining_facts import held_out_pairs, training_pairs

from server_process import ServerProcess

BASE = "smollm2:135m"
pytestmark = pytest.mark.skipif(
    not os.environ.get("BENDI_TUNE_PYTHON"),
    reason="BENDI_TUNE_PYTHON is not set (bash scripts/install_tune.sh prints it)",
)


@pytest.fixture(scope="module")
def server(bendi_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return bendi_server_factory(env={"BENDI_CONTEXT_TOKENS": "1024"})


def _wait(
    client: httpx.Client, job_id: str, until: Callable[[dict[str, Any]], bool], timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while not until(job := client.get(f"/api/tune/{job_id}").json()):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


@pytest.mark.timeout(900)
def test_stop_resume_and_serve(server: ServerProcess) -> None:
    body = {"base": BASE, "name": "api", "data": training_pairs()[:16], "eval": held_out_pairs()[:4],
            "max_steps": 4, "batch_size": 4, "max_length": 96}  # fmt: skip
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        started = client.post("/api/tune", json=body)
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        assert (
            started.json()["preset"] == f"{BASE}+api" and started.headers["location"] == f"/api/tune/{job_id}"
        )
        busy = client.post("/api/tune", json=body)
        assert busy.status_code == 409 and job_id in busy.json()["error"]
        _wait(client, job_id, lambda j: j["progress"].get("event") == "step" or j["status"] != "running", 600)
        client.delete(f"/api/tune/{job_id}")  # the trainer finishes its step and checkpoints
        stopped = _wait(client, job_id, lambda j: j["status"] != "running", 300)
        assert stopped["status"] == "interrupted" and "checkpoint" in stopped["error"], stopped

        resumed = client.post("/api/tune", json={**body, "resume": True})
        assert resumed.status_code == 202, resumed.text
        done = _wait(client, resumed.json()["id"], lambda j: j["status"] != "running", 600)
        assert done["status"] == "done", done
        assert done["metrics"]["steps"] == 4 and done["metrics"]["preset"] == f"{BASE}+api"
        assert (
            done["progress"].get("step", 0) > stopped["progress"].get("step", 0)
            or done["metrics"]["steps"] == 4
        )
        assert [r["id"] for r in client.get("/api/tune").json()["runs"]][:2] == [resumed.json()["id"], job_id]

    chat = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", timeout=240)
    reply = chat.chat.completions.create(model=f"{BASE}+api", max_tokens=8, temperature=0,
                                         messages=[{"role": "user", "content": held_out_pairs()[0]["question"]}])  # fmt: skip
    assert reply.choices[0].message.content
    assert f"{BASE}+api" in {m.id for m in chat.models.list()}


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"data": [{"question": "q", "answer": "a"}, {"question": "q"}]}, 400, "line 2"),
        ({"base": "no-such:1b"}, 404, "no-such:1b"),
        ({"name": "../x"}, 400, "name"),
        ({"batch_size": 0}, 400, "--batch-size"),
        ({"resume": True, "name": "never-ran"}, 400, "no interrupted run"),
    ],
)
def test_bad_requests_are_refused_before_anything_runs(server: ServerProcess, change: dict[str, Any],
                                                        status: int, words: str) -> None:  # fmt: skip
    body = {"base": BASE, "name": "bad", "data": training_pairs()[:2], **change}
    answer = httpx.post(server.base_url + "/api/tune", json=body, timeout=60)
    assert answer.status_code == status and words in answer.text, answer.text
