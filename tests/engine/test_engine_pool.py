"""EnginePool with the real model: load on first use, keep-alive, eviction, fit refusal, failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bendi.core.errors import EngineError, ModelNotFoundError, ModelTooLargeError
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.engines.messages import GenerationRequest, SamplingParams, TextDelta
from bendi.engines.pool import EnginePool, FitVerdict, memory_fit_check
from bendi.store.resolve import LocalModel, resolve_model

NAME = "smollm2:135m"


def small(settings: Settings, **changes: object) -> Settings:
    # One thread: on a shared 2-core machine, llama.cpp's spinning thread barrier collapses when
    # other processes take a core; one thread degrades gracefully instead.
    return settings.model_copy(
        update={"context_tokens": 256, "parallel_sequences": 2, "threads": 1, **changes}
    )


def pool_for(settings: Settings, **kwargs: object) -> EnginePool:
    return EnginePool(settings, DataPaths(settings.home).ensure(), **kwargs)  # type: ignore[arg-type]


def test_loads_on_first_use_once_and_describes_the_model(settings: Settings) -> None:
    pool = pool_for(small(settings))

    async def scenario() -> None:
        assert pool.default_model_name() == NAME  # nothing installed: the bundled model
        engine = await pool.acquire(NAME)
        assert await pool.acquire(NAME) is engine
        (loaded,) = pool.loaded()
        info = loaded.info
        assert info.model_name == NAME and info.engine == "llama.cpp" and info.context_tokens == 256
        assert info.architecture == "llama" and info.quantization == "Q4_1"
        assert 100e6 < (info.parameters or 0) < 200e6 and info.file_bytes > 50e6
        assert info.memory_bytes > info.file_bytes * 0.9  # weights plus the KV cache it reserved
        await pool.aclose()
        assert pool.loaded() == []

    asyncio.run(scenario())
    assert pool_for(small(settings, default_model="deepseek-r1:7b")).default_model_name() == "deepseek-r1:7b"


def test_keep_alive_unloads_idle_models_but_not_busy_ones(settings: Settings) -> None:
    pool = pool_for(small(settings))

    async def scenario() -> None:
        engine = await pool.acquire(NAME, keep_alive_s=0.0)
        stream = engine.generate(GenerationRequest("Once upon a time", SamplingParams(max_tokens=200)))
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        assert await pool.unload_expired() == []  # expired, but a generation is running
        await stream.aclose()
        for _ in range(500):
            if not pool.stats()[NAME].active_sequences:
                break
            await asyncio.sleep(0.01)
        assert await pool.unload_expired() == [NAME]
        assert pool.loaded() == []
        await pool.acquire(NAME)  # default keep-alive (300 s): stays
        assert await pool.unload_expired() == []
        await pool.aclose()

    asyncio.run(scenario())


def test_max_loaded_models_evicts_the_least_recently_used(settings: Settings, smollm2_path: Path) -> None:
    pool = pool_for(small(settings, max_loaded_models=1))

    async def scenario() -> list[str]:
        await pool.acquire(NAME)
        await pool.acquire(str(smollm2_path))  # the same file by path: another model to the pool
        names = [m.info.model_name for m in pool.loaded()]
        await pool.aclose()
        return names

    assert asyncio.run(scenario()) == [smollm2_path.name]


def test_a_model_that_will_not_fit_is_refused_with_numbers(settings: Settings) -> None:
    seen: list[tuple[str, int]] = []

    def refuse(model: LocalModel, context_tokens: int, loaded: list[object]) -> FitVerdict:
        seen.append((model.name, context_tokens))
        return FitVerdict(
            False, required_bytes=9_000_000_000, available_bytes=1_000_000_000, reason="too big"
        )

    pool = pool_for(small(settings), fit_check=refuse)
    with pytest.raises(ModelTooLargeError) as info:
        asyncio.run(pool.acquire(NAME))
    assert "required 9.0 GB" in info.value.message and "available 1.0 GB" in info.value.message
    assert seen == [(NAME, 256)] and pool.loaded() == []

    forced = pool_for(small(settings, force_load=True), fit_check=refuse)

    async def load_forced() -> int:
        await forced.acquire(NAME)
        count = len(forced.loaded())
        await forced.aclose()
        return count

    assert asyncio.run(load_forced()) == 1


def test_default_fit_check_counts_weights_and_kv_cache(settings: Settings) -> None:
    model = resolve_model(DataPaths(settings.home).ensure(), NAME)
    short = memory_fit_check(model, 256, [])
    long = memory_fit_check(model, 8192, [], sequences=8)
    assert short.fits and short.required_bytes > model.size_bytes
    assert long.required_bytes > short.required_bytes  # the KV cache grows with context x sequences


def test_a_broken_model_fails_with_a_reason_and_others_keep_serving(
    settings: Settings, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    pool = pool_for(small(settings))

    async def scenario() -> str:
        with pytest.raises(EngineError):
            await pool.acquire(str(broken))
        assert "broken.gguf" in pool.failures()
        engine = await pool.acquire(NAME)
        text = []
        async for event in engine.generate(GenerationRequest("Hello", SamplingParams(max_tokens=3))):
            if isinstance(event, TextDelta):
                text.append(event.text)
        await pool.aclose()
        return "".join(text)

    assert asyncio.run(scenario())


def test_a_model_loaded_by_path_answers_to_its_listed_file_name(
    settings: Settings, smollm2_path: Path, tmp_path: Path
) -> None:
    """`bendi serve --model /models/x.gguf` lists `x.gguf` in /v1/models; a client asking for that id
    gets the loaded file, not "no model file at x.gguf" (it is not a path from the server's directory)."""
    copy = tmp_path / "elsewhere" / "team-model.Q4_1.gguf"
    copy.parent.mkdir()
    copy.symlink_to(smollm2_path)
    pool = pool_for(small(settings))

    async def scenario() -> None:
        engine = await pool.acquire(str(copy))
        assert [m.info.model_name for m in pool.loaded()] == ["team-model.Q4_1.gguf"]
        assert pool.resolve("team-model.Q4_1.gguf").path == copy.resolve()
        assert await pool.acquire("team-model.Q4_1.gguf") is engine
        await pool.aclose()

    asyncio.run(scenario())
    with pytest.raises(
        ModelNotFoundError, match="No model file"
    ):  # not loaded: still only a name, not a path
        pool.resolve("team-model.Q4_1.gguf")
