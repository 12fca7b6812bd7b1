"""The demo suite shipped with bendi: questions written for the mining-safety demo library."""

from __future__ import annotations

from pathlib import Path

from bendi.core.errors import EvalSuiteError

# Package data next to the library it asks about; `.jsonl` is not a document format the demo
# knowledge base ingests, so the questions never end up among its sources.
DEMO_SUITE = (
    Path(__file__).resolve().parents[1] / "demo" / "mining-safety-cn" / "eval" / "mining-safety.jsonl"
)
DEMO_SUITE_NAME = "demo"
DEMO_KB = "mining"  # the base `bendi kb demo` creates (ops/demo.py DEMO_BASE_NAME)


def suite_path(name_or_path: str) -> Path:
    """`demo` is the shipped suite; anything else is a path to a JSONL file."""
    if name_or_path == DEMO_SUITE_NAME and not Path(name_or_path).exists():
        if not DEMO_SUITE.is_file():
            raise EvalSuiteError(
                f"The demo suite is missing from this installation ({DEMO_SUITE}). Reinstall bendi."
            )
        return DEMO_SUITE
    return Path(name_or_path).expanduser()
