"""A real SmolLM2 engine shared by the speculative-decoding tests; each test sets its mode."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bendi.engines.llamacpp.engine import LlamaCppEngine
from bendi.engines.llamacpp.model import ContextConfig


@pytest.fixture(scope="module")
def engine(smollm2_path: Path) -> Iterator[LlamaCppEngine]:
    # One thread: other test runs share the cores (see tests/engine/conftest.py).
    config = ContextConfig(context_tokens=1024, sequences=8, batch_tokens=256, threads=1)
    engine = LlamaCppEngine("smollm2:135m", smollm2_path, config)
    yield engine
    asyncio.run(engine.close())
