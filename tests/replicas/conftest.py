"""The real-vLLM fixtures of tests/subprocess_engines (its venv and HF-format test model), shared here
for the pass-through test, so both areas make the model once per machine the same way."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "subprocess_engines_fixtures", Path(__file__).resolve().parents[1] / "subprocess_engines" / "conftest.py"
)
assert _SPEC is not None and _SPEC.loader is not None
_FIXTURES = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_FIXTURES)

vllm_python = _FIXTURES.vllm_python
hf_think_model = _FIXTURES.hf_think_model
