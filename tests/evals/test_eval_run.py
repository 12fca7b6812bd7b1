"""A real `bendi eval` run on the bundled SmolLM2: the --json shape, the stored report, the HTML file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bendi.evals.demo_suite import DEMO_SUITE


def test_cli_run_json_shape(tmp_path: Path, bendi_home: Path) -> None:
    lines = DEMO_SUITE.read_text(encoding="utf-8").splitlines()
    suite = tmp_path / "small.jsonl"
    suite.write_text("\n".join(lines[:2] + lines[-1:]) + "\n", encoding="utf-8")
    html = tmp_path / "r.html"
    bendi = Path(sys.executable).parent / "bendi"
    done = subprocess.run([str(bendi), "eval", str(suite), "--model", "smollm2:135m", "--max-tokens", "24",
                           "--threads", "2", "--json", "--html", str(html)],
                          capture_output=True, text=True, timeout=240, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    metrics = report["models"]["smollm2:135m"]["metrics"]
    for key in (
        "char_f1",
        "rouge_l",
        "key_point_coverage",
        "citation_accuracy",
        "refusal_rate",
        "ttft_s",
        "tokens_per_s",
        "memory_bytes",
    ):
        assert key in metrics
    assert 0.0 <= metrics["char_f1"] <= 1.0 and metrics["memory_bytes"] > 0
    assert len(report["models"]["smollm2:135m"]["answers"]) == 3
    assert (bendi_home / "evals" / f"{report['id']}.json").is_file()
    assert "<svg" in html.read_text(encoding="utf-8")


def test_bad_suite_fails_before_any_model_loads(tmp_path: Path, bendi_home: Path) -> None:
    suite = tmp_path / "bad.jsonl"
    suite.write_text('{"question": "q", "reference": "r"}\n{"question": 3}\n', encoding="utf-8")
    bendi = Path(sys.executable).parent / "bendi"
    done = subprocess.run([str(bendi), "eval", str(suite), "--model", "smollm2:135m"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1 and "Suite line 2" in done.stderr
