"""Evaluations over HTTP on a real `bendi serve` (POST /api/evals): a knowledge-base model and a plain
one on questions from the demo suite about the law in the base, followed while it runs, then its
citation and refusal metrics; and the requests refused before anything runs."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from kb_testing import KbServer

from bendi.evals.demo_suite import DEMO_SUITE

BASE = "smollm2:135m"


@pytest.fixture(scope="module")
def server(mining_law_server: KbServer) -> KbServer:
    return mining_law_server


def _questions() -> list[dict[str, Any]]:
    """The demo suite's questions on the law in the base (矿山安全法), and one nobody can answer."""
    rows = [json.loads(line) for line in DEMO_SUITE.read_text(encoding="utf-8").splitlines() if line.strip()]
    on_the_law = [r for r in rows if r.get("source", "").startswith("矿山安全法")][:2]
    return [*on_the_law, next(r for r in rows if r.get("answerable") is False)]


def test_an_evaluation_runs_in_the_server_and_is_followed(server: KbServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        body = {"suite": _questions(), "name": "mining-law", "models": ["kb:mining", BASE], "max_tokens": 24}
        started = client.post("/api/evals", json=body)
        assert started.status_code == 202, started.text
        report_id = started.json()["id"]
        assert started.headers["location"] == f"/api/evals/{report_id}"
        busy = client.post("/api/evals", json=body)  # one at a time: the engines are shared
        assert busy.status_code == 409 and report_id in busy.json()["error"]
        deadline = time.monotonic() + 400
        while (report := client.get(f"/api/evals/{report_id}").json())["status"] == "running":
            assert time.monotonic() < deadline, report
            time.sleep(1)
    assert report["status"] == "done", report["error"]
    grounded, plain = report["models"]["kb:mining"]["metrics"], report["models"][BASE]["metrics"]
    assert grounded["questions"] == plain["questions"] == 3 and grounded["errors"] == 0
    assert grounded["retrieval_hit_rate"] == 1.0  # the base holds the cited articles and finds them
    assert grounded["citation_accuracy"] is not None and grounded["refusal_rate"] is not None
    answers = report["models"]["kb:mining"]["answers"]
    assert all(a["sources"] for a in answers if a["answerable"])  # grounded answers carry their sources
    listed = httpx.get(server.base_url + "/api/evals", timeout=30).json()["reports"]
    assert listed[0]["id"] == report_id and listed[0]["suite"] == "mining-law"


def test_knowledge_base_grounds_a_plain_model(server: KbServer) -> None:
    """ "knowledge_base" (the CLI's --kb) answers a plain model's questions from the base, cited."""
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        body = {"suite": _questions(), "models": [BASE], "knowledge_base": "mining", "max_tokens": 16}
        started = client.post("/api/evals", json=body)
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 400
        while (report := client.get(f"/api/evals/{started.json()['id']}").json())["status"] == "running":
            assert time.monotonic() < deadline, report
            time.sleep(1)
    assert report["status"] == "done" and report["models"][BASE]["knowledge_base"] == "mining"
    assert report["models"][BASE]["metrics"]["retrieval_hit_rate"] == 1.0


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"suite": "/etc/passwd", "models": [BASE]}, 400, "suite"),  # never a path on the server
        ({"suite": [{"question": "q"}], "models": [BASE]}, 400, "line 1"),
        ({"suite": [{"question": "q", "reference": "r"}], "models": ["no-such:1b"]}, 404, "no-such:1b"),
        ({"suite": [{"question": "q", "reference": "r"}], "models": ["kb:nothing"]}, 404, "nothing"),
        ({"suite": [{"question": "q", "reference": "r"}], "models": [BASE, BASE]}, 400, "twice"),
        ({"suite": [{"question": "q", "reference": "r"}], "models": []}, 400, ""),
    ],
)
def test_bad_requests_are_refused_before_anything_runs(server: KbServer, body: dict[str, Any], status: int,
                                                        words: str) -> None:  # fmt: skip
    before = httpx.get(server.base_url + "/api/evals", timeout=30).json()["reports"]
    answer = httpx.post(server.base_url + "/api/evals", json=body, timeout=60)
    assert answer.status_code in (status, 422), answer.text
    assert words in answer.text
    assert httpx.get(server.base_url + "/api/evals", timeout=30).json()["reports"] == before
