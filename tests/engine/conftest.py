"""One real llama.cpp engine (SmolLM2) shared by the engine tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bendi.engines.llamacpp.engine import LlamaCppEngine
from bendi.engines.llamacpp.model import ContextConfig
from bendi.engines.messages import Finished, GenerationRequest, SamplingParams, TextDelta


@pytest.fixture(scope="module")
def engine(smollm2_path: Path) -> Iterator[LlamaCppEngine]:
    # One thread: llama.cpp's spinning thread barrier collapses when other processes share the
    # cores (parallel test runs); a single thread degrades gracefully.
    config = ContextConfig(context_tokens=1024, sequences=8, batch_tokens=256, threads=1)
    engine = LlamaCppEngine("smollm2:135m", smollm2_path, config)
    yield engine
    asyncio.run(engine.close())


async def _collect(engine: LlamaCppEngine, prompt: str, **params: object) -> tuple[str, Finished]:
    text, finished = [], None
    async for event in engine.generate(GenerationRequest(prompt, SamplingParams(**params))):  # type: ignore[arg-type]
        if isinstance(event, TextDelta):
            text.append(event.text)
        else:
            finished = event
    assert finished is not None
    return "".join(text), finished


@pytest.fixture(scope="session")
def collect():  # type: ignore[no-untyped-def]
    """collect(engine, prompt, **sampling) -> (text, Finished)."""
    return _collect
