"""The in-process llama.cpp engine and its continuous-batching scheduler, with the real model."""

from __future__ import annotations

import asyncio

import pytest

from bendi.core.errors import ContextOverflowError, InvalidModelFileError
from bendi.engines.chat_template import ChatTemplate
from bendi.engines.messages import ChatMessage, GenerationRequest, SamplingParams, TextDelta

QUESTION = [ChatMessage("user", "Write one sentence about the sea.")]


def prompt_for(engine, messages=QUESTION) -> str:  # type: ignore[no-untyped-def]
    return engine.render_chat(messages).text


def test_chat_template_comes_from_the_gguf(engine) -> None:  # type: ignore[no-untyped-def]
    rendered = engine.render_chat(QUESTION)
    assert rendered.text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWrite one sentence about the sea.<|im_end|>" in rendered.text
    assert not rendered.opens_reasoning


@pytest.mark.parametrize(
    "hostile",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__.__init__.__globals__ }}",
        "{% set x = messages.append(1) %}",
    ],
)
def test_template_sandbox_refuses_python_internals(hostile: str) -> None:
    with pytest.raises(InvalidModelFileError, match="unsafe"):
        ChatTemplate(hostile).render(QUESTION)


def test_r1_style_template_that_opens_think_is_detected() -> None:
    template = ChatTemplate(
        "{% for m in messages %}<｜User｜>{{ m['content'] }}{% endfor %}<｜Assistant｜><think>\n"
    )
    assert template.render(QUESTION).opens_reasoning


def test_max_tokens_ends_with_length(engine, collect) -> None:  # type: ignore[no-untyped-def]
    text, finished = asyncio.run(collect(engine, prompt_for(engine), max_tokens=7, temperature=0))
    assert finished.finish_reason == "length"
    assert finished.usage.completion_tokens == 7
    assert text


def test_stop_string_is_never_emitted(engine, collect) -> None:  # type: ignore[no-untyped-def]
    full, _ = asyncio.run(collect(engine, prompt_for(engine), max_tokens=40, temperature=0))
    stop = full[5:8]
    text, finished = asyncio.run(
        collect(engine, prompt_for(engine), max_tokens=40, temperature=0, stop=(stop,))
    )
    assert finished.finish_reason == "stop"
    assert stop not in text
    assert full.startswith(text)


def test_same_seed_same_text_and_different_seed_differs(engine, collect) -> None:  # type: ignore[no-untyped-def]
    sample = dict(max_tokens=30, temperature=1.2, top_p=1.0, top_k=0, min_p=0.0)
    a, _ = asyncio.run(collect(engine, prompt_for(engine), seed=7, **sample))
    b, _ = asyncio.run(collect(engine, prompt_for(engine), seed=7, **sample))
    others = {asyncio.run(collect(engine, prompt_for(engine), seed=s, **sample))[0] for s in (8, 9, 10)}
    assert a == b
    assert others - {a}


def test_chinese_output_is_valid_utf8_in_every_piece(engine) -> None:  # type: ignore[no-untyped-def]
    prompt = prompt_for(engine, [ChatMessage("user", "请用中文介绍一下煤矿安全。")])

    async def pieces() -> list[str]:
        out = []
        params = SamplingParams(max_tokens=60, temperature=0)
        async for event in engine.generate(GenerationRequest(prompt, params)):
            if isinstance(event, TextDelta):
                out.append(event.text)
        return out

    out = asyncio.run(pieces())
    assert out
    assert all("\ufffd" not in piece for piece in out)
    assert any(ord(ch) > 0x2E80 for ch in "".join(out))  # CJK came through


def test_prompt_longer_than_context_is_refused_before_generating(engine) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        async for _ in engine.generate(GenerationRequest("word " * 1500, SamplingParams(max_tokens=5))):
            pass

    with pytest.raises(ContextOverflowError) as info:
        asyncio.run(run())
    assert info.value.context_tokens == 1024
    assert info.value.prompt_tokens > 1024


def test_eight_concurrent_streams_each_equal_a_lone_run(engine, collect) -> None:  # type: ignore[no-untyped-def]
    prompts = [prompt_for(engine, [ChatMessage("user", f"Count to {i} please.")]) for i in range(8)]
    # Each request keeps its own parameters inside the shared batch.
    params: list[dict[str, object]] = [dict(max_tokens=16, temperature=0) for _ in prompts]
    params[1] = dict(max_tokens=5, temperature=0)
    params[2] = dict(max_tokens=16, temperature=1.0, seed=42, top_k=0, top_p=1.0, min_p=0.0)
    params[3] = dict(max_tokens=16, temperature=0, repeat_penalty=1.3)
    alone = [asyncio.run(collect(engine, p, **kw)) for p, kw in zip(prompts, params, strict=True)]
    params[4] = dict(max_tokens=16, temperature=0, stop=(alone[4][0][6:9],))

    async def together() -> list[tuple[str, str]]:
        results = await asyncio.gather(
            *(collect(engine, p, **kw) for p, kw in zip(prompts, params, strict=True))
        )
        return [(text, finished.finish_reason) for text, finished in results]

    results = asyncio.run(together())
    for i, (text, reason) in enumerate(results):
        if i == 4:  # cut before its stop string, which never shows
            assert reason == "stop" and alone[4][0].startswith(text) and params[4]["stop"][0] not in text  # type: ignore[index]
        else:
            assert (text, reason) == (alone[i][0], alone[i][1].finish_reason), f"stream {i} differs"
    assert results[1][1] == "length"
    assert engine.stats().decode_steps > 0


def test_cancel_frees_the_sequence_at_once(engine, collect) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        events = engine.generate(
            GenerationRequest(prompt_for(engine), SamplingParams(max_tokens=900, temperature=0.8))
        )
        got = 0
        async for _ in events:
            got += 1
            if got == 3:
                break
        await events.aclose()
        for _ in range(1000):  # freed at the scheduler's next step; generous for a loaded machine
            if engine.stats().active_sequences == 0:
                break
            await asyncio.sleep(0.01)
        assert engine.stats().active_sequences == 0
        text, finished = await collect(engine, prompt_for(engine), max_tokens=5, temperature=0)
        assert finished.usage.completion_tokens == 5

    asyncio.run(scenario())


def test_second_turn_reuses_the_first_turns_kv(engine, collect) -> None:  # type: ignore[no-untyped-def]
    history = [ChatMessage("system", "You are a mining-safety assistant. " * 20), ChatMessage("user", "Hi.")]
    answer, first = asyncio.run(collect(engine, prompt_for(engine, history), max_tokens=16, temperature=0))
    history += [ChatMessage("assistant", answer), ChatMessage("user", "And gas detection?")]
    _, second = asyncio.run(collect(engine, prompt_for(engine, history), max_tokens=4, temperature=0))
    assert second.usage.cached_prompt_tokens >= first.usage.prompt_tokens - 1
    assert engine.stats().prefix_cache_hit_ratio > 0


def test_embeddings_are_normalised_and_labelled_as_fallback(engine) -> None:  # type: ignore[no-untyped-def]
    vectors = asyncio.run(engine.embed(["煤矿瓦斯检查", "gas inspection in coal mines", "今天天气很好"]))
    assert len(vectors) == 3 and len(vectors[0]) == 576
    assert abs(sum(v * v for v in vectors[0]) - 1.0) < 1e-3
    assert engine.info.embeddings_are_fallback  # a chat model's pooled states, said so
    # Texts packed into one decode do not see each other: alone, a text gets the same vector.
    alone = asyncio.run(engine.embed(["gas inspection in coal mines"]))[0]
    assert max(abs(a - b) for a, b in zip(alone, vectors[1], strict=True)) < 1e-4
    related = sum(a * b for a, b in zip(vectors[0], vectors[1], strict=True))
    assert -1.0 <= related <= 1.0


def test_an_empty_prompt_starts_from_the_start_token(engine, collect) -> None:  # type: ignore[no-untyped-def]
    _, finished = asyncio.run(collect(engine, "", max_tokens=3, temperature=0))
    assert finished.usage.prompt_tokens == 1
    assert finished.finish_reason in ("length", "stop")


def test_closing_during_embeddings_waits_for_them_and_later_ones_are_refused(smollm2_path) -> None:  # type: ignore[no-untyped-def]
    # keep_alive 0 unloads a model at once; an embedding still running on it must finish first,
    # and one that was waiting must get a clear error instead of touching freed memory (a segfault).
    from bendi.core.errors import EngineError
    from bendi.engines.llamacpp.engine import LlamaCppEngine
    from bendi.engines.llamacpp.model import ContextConfig

    engine = LlamaCppEngine(
        "smollm2:135m",
        smollm2_path,
        ContextConfig(context_tokens=512, sequences=1, batch_tokens=256, threads=1),
    )

    async def race() -> tuple[object, object]:
        texts = ["瓦斯检查 " * 60] * 4
        running = asyncio.create_task(engine.embed(texts))
        await asyncio.sleep(0)  # the embedding takes the lock first
        closing = asyncio.create_task(engine.close())
        waiting = asyncio.create_task(engine.embed(["after"]))
        results = await asyncio.gather(running, waiting, return_exceptions=True)
        await closing
        return results[0], results[1]

    first, second = asyncio.run(race())
    assert isinstance(first, list) and len(first) == 4
    assert isinstance(second, EngineError)
