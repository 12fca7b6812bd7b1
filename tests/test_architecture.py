"""House rules that keep the code easy to live in: layer order, lint, module size, no stubs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "bendi"
BIN = Path(sys.executable).parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    executable = BIN / tool
    if not executable.exists():
        pytest.skip(f"{tool} is not installed (pip install -e '.[dev]')")
    return subprocess.run([str(executable), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_layers_only_import_downwards() -> None:
    result = _run("lint-imports")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ruff_lint_is_clean() -> None:
    result = _run("ruff", "check", "src", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout[-4000:]


def test_every_module_says_its_job_and_stays_small() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if not text.lstrip().startswith('"""'):
            problems.append(f"{path.relative_to(ROOT)}: no module docstring")
        if lines > 600:
            problems.append(f"{path.relative_to(ROOT)}: {lines} lines (split it: > 600)")
        if path.stem in {"utils", "helpers", "common", "misc"}:
            problems.append(f"{path.relative_to(ROOT)}: name the concept instead of '{path.stem}'")
    assert not problems, "\n".join(problems)
