"""LoRA adapters on the real engine and pool: they change the output, scale 0 is the base, each
adapter is its own engine while the base is shared, and a bad adapter is refused by name."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bendi.core.errors import AdapterError
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.engines.messages import GenerationRequest, SamplingParams, TextDelta
from bendi.engines.pool import EnginePool
from bendi.store.local_model import AdapterRef, LocalModel
from bendi.store.resolve import resolve_model

sys.path.insert(0, str(Path(__file__).parent))
from loramaker import write_lora  # noqa: E402

BASE = "smollm2:135m"


def small(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"context_tokens": 256, "parallel_sequences": 1, "threads": 1, "max_loaded_models": 5}
    )


def greedy(loop: asyncio.AbstractEventLoop, pool: EnginePool, model: LocalModel) -> str:
    async def run() -> str:
        engine = await pool.acquire(model.name)
        params = SamplingParams(temperature=0.0, max_tokens=12)
        request = GenerationRequest("The capital of France is", params)
        return "".join([e.text async for e in engine.generate(request) if isinstance(e, TextDelta)])

    return loop.run_until_complete(run())


class _Pool(EnginePool):
    """The real pool, resolving extra names to base+adapters (what a preset with ADAPTER does)."""

    def __init__(self, settings: Settings, extra: dict[str, LocalModel]) -> None:
        super().__init__(settings, DataPaths(settings.home).ensure())
        self.extra = extra

    def resolve(self, name_or_path: str) -> LocalModel:
        return self.extra.get(name_or_path) or super().resolve(name_or_path)


def with_adapters(base: LocalModel, name: str, *refs: AdapterRef) -> LocalModel:
    return replace(base, name=name, source="preset", adapters=refs)


def test_adapters_change_output_scale_zero_is_base_and_engines_are_separate(
    settings: Settings, tmp_path: Path
) -> None:
    settings = small(settings)
    base = resolve_model(DataPaths(settings.home), BASE)
    a, b = write_lora(tmp_path / "a.gguf", seed=1), write_lora(tmp_path / "b.gguf", seed=2)
    models = {
        "with-a": with_adapters(base, "with-a", AdapterRef(a, 1.0)),
        "with-b": with_adapters(base, "with-b", AdapterRef(b, 1.0)),
        "a-off": with_adapters(base, "a-off", AdapterRef(a, 0.0)),
        "plain-alias": base,  # a preset without ADAPTER resolves to its base (store/resolve.py)
    }
    pool, loop = _Pool(settings, models), asyncio.new_event_loop()  # the pool lives on one loop
    try:
        plain = greedy(loop, pool, base)
        assert greedy(loop, pool, models["with-a"]) != plain
        assert greedy(loop, pool, models["with-b"]) != plain
        assert greedy(loop, pool, models["a-off"]) == plain
        assert greedy(loop, pool, models["plain-alias"]) == plain
        loaded = {m.info.model_name: m for m in pool.loaded()}
        assert set(loaded) == {BASE, "with-a", "with-b", "a-off"}  # the alias shares the base's engine
        assert (
            loaded["with-a"].adapters[0]["name"] == "a.gguf" and loaded["with-a"].adapters[0]["scale"] == 1.0
        )
        assert loaded[BASE].adapters == []
        assert loaded["with-a"].info.memory_bytes > loaded[BASE].info.memory_bytes  # adapter counted
    finally:
        loop.run_until_complete(pool.aclose())
        loop.close()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: write_lora(p, arch="qwen2", layers=range(2)), "'qwen2' model"),
        (lambda p: write_lora(p, dims={"attn_q": (512, 512)}, layers=range(2)), "512"),
        (lambda p: write_lora(p, layers=range(40, 41)), "does not exist in the base"),
        (lambda p: write_lora(p, general_type="model", layers=range(1)), "not a LoRA adapter"),
        (lambda p: p.write_bytes(write_lora(p, layers=range(2)).read_bytes()[:-1000]) and p, "truncated"),
        (lambda p: p.write_text("not a gguf") and p, "not a valid GGUF"),
        (lambda p: p.with_name("missing.gguf"), "No adapter file"),
        (lambda p: p.parent, "not a regular file"),
    ],
)
def test_a_bad_adapter_is_refused_clearly_and_the_base_still_answers(
    settings: Settings, tmp_path: Path, make: object, words: str
) -> None:
    settings = small(settings)
    base = resolve_model(DataPaths(settings.home), BASE)
    bad_path = make(tmp_path / "bad.gguf")  # type: ignore[operator]
    bad = with_adapters(base, "bad", AdapterRef(bad_path))
    pool, loop = _Pool(settings, {"bad": bad}), asyncio.new_event_loop()
    try:
        plain = greedy(loop, pool, base)
        with pytest.raises(AdapterError) as caught:
            greedy(loop, pool, bad)
        assert words in caught.value.message
        assert "bad" in pool.failures()
        assert greedy(loop, pool, base) == plain
    finally:
        loop.run_until_complete(pool.aclose())
        loop.close()
