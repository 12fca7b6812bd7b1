"""The HTML report is self-contained and escapes hostile answers; the demo suite is valid."""

from __future__ import annotations

import re

from bendi.evals.demo_suite import DEMO_SUITE
from bendi.evals.report_html import render_html
from bendi.evals.suite import load_suite
from bendi.evals.summary import summarize

HOSTILE = '<script>alert(1)</script><img src="https://evil.example/x.png">'


def _report() -> dict[str, object]:
    rows = [{"id": "q1", "answerable": True, "answer": HOSTILE, "error": None, "ttft_s": 0.1, "tokens_per_s": 20.0,
             "scores": {"refused": False, "char_f1": 0.5, "rouge_l": 0.4, "key_point_coverage": 1.0,
                        "citation_correct": False, "retrieval_hit": None}}]  # fmt: skip
    return {"suite": "<b>s</b>", "started_at": 0, "settings": {"temperature": 0.0},
            "questions": [{"id": "q1", "question": "Q <i>", "reference": "R", "key_points": [], "answerable": True}],
            "models": {"m<x>": {"metrics": summarize(rows, {"memory_bytes": 2**30}), "answers": rows, "engine": None}}}  # fmt: skip


def test_html_escapes_answers_and_loads_nothing_external() -> None:
    page = render_html(_report())
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.IGNORECASE)
    assert "Content-Security-Policy" in page and "<svg" in page
    assert "m&lt;x&gt;" in page


def test_demo_suite_is_valid_and_large_enough() -> None:
    suite = load_suite(DEMO_SUITE)
    assert len(suite.questions) >= 30
    assert sum(not q.answerable for q in suite.questions) >= 3
    assert all(q.source and q.article for q in suite.questions if q.answerable)
