"""Prefix copy across slots, running until the context is full, and queueing past the slot count."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bendi.core.errors import EngineError
from bendi.engines.llamacpp.engine import LlamaCppEngine
from bendi.engines.llamacpp.model import ContextConfig
from bendi.engines.messages import ChatMessage, GenerationRequest, SamplingParams

SYSTEM = "You are a careful assistant for coal-mine safety officers. Answer briefly. " * 6


@pytest.fixture()
def two_slot_engine(smollm2_path: Path) -> Iterator[LlamaCppEngine]:
    config = ContextConfig(context_tokens=256, sequences=2, batch_tokens=256, threads=1)
    engine = LlamaCppEngine("smollm2:135m", smollm2_path, config)
    yield engine
    asyncio.run(engine.close())


def chat(engine: LlamaCppEngine, question: str) -> str:
    return engine.render_chat([ChatMessage("system", SYSTEM), ChatMessage("user", question)]).text


def test_a_shared_system_prompt_is_copied_from_a_busy_slot(
    two_slot_engine: LlamaCppEngine, smollm2_path: Path, collect
) -> None:  # type: ignore[no-untyped-def]
    engine = two_slot_engine
    question_b = chat(engine, "What is methane?")

    async def scenario() -> tuple[str, int]:
        busy = engine.generate(  # A keeps slot 0 busy with the system prompt in its cells
            GenerationRequest(chat(engine, "Why ventilate?"), SamplingParams(max_tokens=200, temperature=0))
        )
        await anext(busy)
        # B lands on the empty slot; the system prompt's KV is copied over from A's stream.
        text, finished = await collect(engine, question_b, max_tokens=12, temperature=0)
        await busy.aclose()
        return text, finished.usage.cached_prompt_tokens

    text, cached = asyncio.run(scenario())
    system_tokens = engine.count_tokens(engine.render_chat([ChatMessage("system", SYSTEM)]).text)
    assert cached >= system_tokens - 2

    fresh = LlamaCppEngine("smollm2:135m", smollm2_path, ContextConfig(256, 2, 256, 1))
    try:
        reference, first = asyncio.run(collect(fresh, question_b, max_tokens=12, temperature=0))
    finally:
        asyncio.run(fresh.close())
    assert first.usage.cached_prompt_tokens == 0
    assert text == reference  # copied KV gives exactly what computing it does


def test_an_unrelated_request_does_not_evict_a_conversation(two_slot_engine, collect) -> None:  # type: ignore[no-untyped-def]
    engine = two_slot_engine
    history = [ChatMessage("system", SYSTEM), ChatMessage("user", "Hi.")]
    answer, first = asyncio.run(
        collect(engine, engine.render_chat(history).text, max_tokens=8, temperature=0)
    )
    # Same system prompt, other user: it takes the empty slot and copies the shared prefix.
    _, other = asyncio.run(collect(engine, chat(engine, "Unrelated question."), max_tokens=4, temperature=0))
    assert other.usage.cached_prompt_tokens > 32
    history += [ChatMessage("assistant", answer), ChatMessage("user", "And gas?")]
    _, second = asyncio.run(collect(engine, engine.render_chat(history).text, max_tokens=4, temperature=0))
    assert second.usage.cached_prompt_tokens >= first.usage.prompt_tokens


def test_no_max_tokens_runs_until_the_context_is_full(two_slot_engine, collect) -> None:  # type: ignore[no-untyped-def]
    prompt = chat(two_slot_engine, "Tell a long story.")
    prompt_tokens = two_slot_engine.count_tokens(prompt)
    _, finished = asyncio.run(collect(two_slot_engine, prompt, temperature=0, ignore_eos=True))
    assert finished.finish_reason == "length"
    assert finished.usage.completion_tokens == 256 - prompt_tokens


def test_more_requests_than_slots_wait_their_turn(two_slot_engine, collect) -> None:  # type: ignore[no-untyped-def]
    prompts = [chat(two_slot_engine, f"Name {n} safety rules.") for n in range(5)]

    async def flood() -> list[str]:
        results = await asyncio.gather(
            *(collect(two_slot_engine, p, max_tokens=6, temperature=0, ignore_eos=True) for p in prompts)
        )
        return [f.finish_reason for _, f in results]

    assert asyncio.run(flood()) == ["length"] * 5
    stats = two_slot_engine.stats()
    assert stats.active_sequences == 0 and stats.waiting_sequences == 0 and stats.slots == 2


async def _prefill_beside_a_stream(engine: LlamaCppEngine, repeats: int) -> tuple[int, int]:
    """Read a long prompt while another stream generates: (tokens the stream got meanwhile, decode
    steps the prompt took)."""
    running = engine.generate(
        GenerationRequest(
            chat(engine, "Count slowly."), SamplingParams(max_tokens=400, temperature=0, ignore_eos=True)
        )
    )
    await anext(running)
    long_prompt = "The mine inspector wrote down every reading. " * repeats  # ~9 tokens each

    async def first_event() -> None:
        stream = engine.generate(GenerationRequest(long_prompt, SamplingParams(max_tokens=1)))
        await anext(stream)
        await stream.aclose()

    steps_before = engine.stats().decode_steps
    newcomer = asyncio.create_task(first_event())
    tokens_meanwhile = 0
    while not newcomer.done():
        await anext(running)
        tokens_meanwhile += 1
    steps = engine.stats().decode_steps - steps_before
    await running.aclose()
    await newcomer
    return tokens_meanwhile, steps


def test_a_long_prompt_is_prefilled_in_chunks_while_streams_keep_flowing(engine) -> None:  # type: ignore[no-untyped-def]
    # ~800 prompt tokens, at most 255 a step beside the stream (batch_tokens 256): 4 steps or more,
    # and the stream keeps getting tokens meanwhile (about one per prefill_step_s, the default 1 s).
    tokens_meanwhile, steps = asyncio.run(_prefill_beside_a_stream(engine, 90))
    assert steps >= 4 and tokens_meanwhile >= 1


def _paced_and_unpaced(smollm2_path: Path) -> dict[float, tuple[int, int]]:
    """(stream tokens meanwhile, steps) of a long prompt beside a stream, unpaced (prefill_step_s
    0: fixed 64-token chunks) and paced with a step far longer than the prompt takes (30 s)."""
    results = {}
    for step_s in (0.0, 30.0):
        config = ContextConfig(context_tokens=1024, sequences=2, batch_tokens=256, threads=1,
                               prefill_chunk_tokens=64, prefill_step_s=step_s)  # fmt: skip
        engine = LlamaCppEngine("smollm2:135m", smollm2_path, config)
        try:
            results[step_s] = asyncio.run(_prefill_beside_a_stream(engine, 90))
        finally:
            asyncio.run(engine.close())
    return results


def test_a_paced_long_prompt_takes_fewer_steps_and_fresh_streams_sit_them_out(smollm2_path: Path) -> None:
    """With prefill_step_s, a chunk is what the engine reads in about that long: fewer steps (each
    a stream rides costs it a pass over the weights) than fixed 64-token chunks. And a stream that
    got a token less than prefill_step_s ago sits a prompt step out; unpaced, it rides every step."""
    (unpaced_tokens, unpaced_steps), (held_tokens, held_steps) = _paced_and_unpaced(smollm2_path).values()
    # fixed: ~800 / 64 steps, a token from each; paced: the first step's 64 tokens, then up to the
    # batch's room
    assert unpaced_steps >= 11 and unpaced_tokens >= unpaced_steps - 1
    assert 4 <= held_steps <= 5
    # held: no token while the prompt's long part is read; they ride its last chunk (a step the
    # prompt ends in either way), plus a token already on its way when it arrived
    assert held_tokens <= 3 < unpaced_tokens


def test_a_failure_while_admitting_ends_the_request_with_the_error(
    two_slot_engine: LlamaCppEngine, collect, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from bendi.engines.llamacpp import scheduler

    def broken_sampler(*args: object, **kwargs: object) -> object:
        raise RuntimeError("sampler could not be built")

    monkeypatch.setattr(scheduler, "build_sampler", broken_sampler)
    with pytest.raises(EngineError, match="sampler could not be built"):
        asyncio.run(asyncio.wait_for(collect(two_slot_engine, "Hello", max_tokens=4), timeout=30))
    monkeypatch.undo()
    text, finished = asyncio.run(collect(two_slot_engine, "Hello", max_tokens=4, temperature=0))
    assert finished.usage.completion_tokens > 0  # the engine keeps serving afterwards


def test_busy_slots_stay_consecutive_so_a_step_is_one_pass(smollm2_path: Path, collect) -> None:  # type: ignore[no-untyped-def]
    from bendi.engines.llamacpp.scheduler import consecutive_runs

    engine = LlamaCppEngine("smollm2:135m", smollm2_path, ContextConfig(256, 4, 256, 1))
    long = SamplingParams(max_tokens=200, temperature=0, ignore_eos=True)

    async def scenario() -> set[int]:
        a = engine.generate(GenerationRequest(chat(engine, "First."), long))
        await anext(a)  # slot 0
        await collect(engine, chat(engine, "Second."), max_tokens=2, temperature=0)  # slot 1, then idle
        c = engine.generate(GenerationRequest(chat(engine, "Third."), long))
        await anext(c)  # slots 0 and 2 busy, 1 holds the finished request's cache, 3 is empty
        d = engine.generate(GenerationRequest(chat(engine, "Fourth."), long))
        await anext(d)
        busy = {slot.seq_id for slot in engine._scheduler._slots if slot.owner is not None}
        for stream in (a, c, d):
            await stream.aclose()
        return busy

    try:
        busy = asyncio.run(scenario())
    finally:
        asyncio.run(engine.close())
    # The empty slot 3 would lose no cache, but a busy slot apart from the others costs every
    # step another pass over the weights: the newcomer fills the hole at slot 1 instead.
    assert busy == {0, 1, 2} and consecutive_runs(busy) == 1


def assert_slots_hold_what_they_claim(engine: LlamaCppEngine) -> None:
    """Each slot's token list is exactly its KV cells: positions 0..n-1 and nothing else."""
    import llama_cpp

    memory = engine._model.memory
    for slot in engine._scheduler._slots:
        lowest = llama_cpp.llama_memory_seq_pos_min(memory, slot.seq_id)
        highest = llama_cpp.llama_memory_seq_pos_max(memory, slot.seq_id)
        assert (lowest, highest) == ((0, len(slot.tokens) - 1) if slot.tokens else (-1, -1))


def test_a_conversation_whose_slot_was_reused_resumes_from_the_ram_prompt_cache(
    smollm2_path: Path, collect
) -> None:  # type: ignore[no-untyped-def]
    def second_turn_after_two_strangers(cache_mb: int) -> tuple[str, int, int, int]:
        engine = LlamaCppEngine(
            "smollm2:135m", smollm2_path, ContextConfig(512, 2, 512, 1, prompt_cache_mb=cache_mb)
        )
        try:
            history = [ChatMessage("system", SYSTEM), ChatMessage("user", "Why ventilate a mine?")]
            answer, first = asyncio.run(
                collect(engine, engine.render_chat(history).text, max_tokens=24, temperature=0)
            )

            async def strangers() -> None:  # both slots busy: the conversation's cells are overwritten
                def stranger(n: int) -> str:
                    return engine.render_chat(
                        [
                            ChatMessage("system", "You translate into French."),
                            ChatMessage("user", f"Text {n}."),
                        ]
                    ).text

                await asyncio.gather(
                    *(
                        collect(engine, stranger(n), max_tokens=8, temperature=0, ignore_eos=True)
                        for n in range(2)
                    )
                )

            asyncio.run(strangers())
            history += [ChatMessage("assistant", answer), ChatMessage("user", "And the gas?")]
            text, second = asyncio.run(
                collect(engine, engine.render_chat(history).text, max_tokens=8, temperature=0)
            )
            assert_slots_hold_what_they_claim(engine)
            return (
                text,
                first.usage.prompt_tokens,
                second.usage.cached_prompt_tokens,
                engine.stats().prompt_cache_restores,
            )
        finally:
            asyncio.run(engine.close())

    text, first_prompt, cached, restores = second_turn_after_two_strangers(64)
    assert restores == 1 and cached >= first_prompt  # the whole first turn came back from RAM
    plain_text, _, plain_cached, _ = second_turn_after_two_strangers(0)
    assert plain_cached < 16  # without it, only the chat template's opening tokens were reused
    assert text == plain_text  # restored KV gives exactly what recomputing it does

    from bendi.engines.llamacpp.prompt_cache import PromptCache

    refused = pytest.MonkeyPatch()
    refused.setattr(PromptCache, "restore", lambda self, saved, seq_id: False)  # llama.cpp says no
    try:
        failed_text, _, failed_cached, _ = second_turn_after_two_strangers(64)
    finally:
        refused.undo()
    assert failed_cached < 16 and failed_text == plain_text  # recomputed, not read from empty cells


def test_the_ram_prompt_cache_stays_within_its_budget() -> None:
    from bendi.engines.llamacpp.prompt_cache import PromptCache

    class FakeStates:  # a sequence's state: 1,000 bytes per token
        def __init__(self) -> None:
            self.tokens = {0: 0}

        def llama_state_seq_get_size(self, ctx: object, seq: int) -> int:
            return 1000 * self.tokens[seq]

        def llama_state_seq_get_data(self, ctx: object, buffer: object, size: int, seq: int) -> int:
            return size

    lib = FakeStates()
    cache = PromptCache(lib, None, capacity_bytes=250_000)
    for start in range(0, 500, 100):  # five unrelated 100-token prefixes
        lib.tokens[0] = 100
        cache.save(0, list(range(start, start + 100)))
    assert len(cache) == 2 and cache.used_bytes == 200_000  # the oldest went first
    assert cache.longest_match(list(range(400, 450)))[1] == 50
    assert cache.longest_match(list(range(0, 50)))[1] == 0
    lib.tokens[0] = 150
    cache.save(0, list(range(400, 550)))  # extends a saved prefix: replaces it
    assert len(cache) == 2 and cache.used_bytes == 250_000
    lib.tokens[0] = 300
    cache.save(0, list(range(1000, 1300)))  # larger than the whole budget: not kept
    assert cache.longest_match(list(range(1000, 1010)))[1] == 0
