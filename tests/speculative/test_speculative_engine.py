"""Speculative decoding in the real engine gives exactly plain decoding's output: greedy across
batch sizes and stop conditions, sampling with a fixed seed, and the KV cache after rollback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from spec_prompts import ARTICLES, QUESTIONS, SYSTEM, collect, kb_prompt, kb_user, run_all

from bendi.engines.llamacpp.engine import LlamaCppEngine
from bendi.engines.llamacpp.model import ContextConfig
from bendi.engines.llamacpp.speculate_policy import SpeculationPolicy
from bendi.engines.llamacpp.step_costs import StepCosts
from bendi.engines.messages import ChatMessage

ANSWER_TOKENS = 48


def plain_outputs(engine: LlamaCppEngine, prompts: list[str], **params: object) -> list[tuple[str, str, int]]:
    engine.configure_speculation("off", 8)
    results = [run_all(engine, [p], **params)[0] for p in prompts]  # one at a time
    return [(text, fin.finish_reason, fin.usage.completion_tokens) for text, fin, _ in results]


def test_greedy_output_is_unchanged_across_batch_sizes(engine: LlamaCppEngine) -> None:
    prompts = [kb_prompt(engine, q) for q in QUESTIONS]
    reference = plain_outputs(engine, prompts, max_tokens=ANSWER_TOKENS, temperature=0)
    before = engine.stats()
    for mode in ("lookup", "auto"):
        engine.configure_speculation(mode, 8)
        for size in (1, 4, 8):
            for start in range(0, len(prompts), size):
                group = prompts[start : start + size]
                got = run_all(engine, group, max_tokens=ANSWER_TOKENS, temperature=0)
                for offset, (text, fin, _) in enumerate(got):
                    assert (text, fin.finish_reason, fin.usage.completion_tokens) == reference[
                        start + offset
                    ], (mode, size, start + offset)
    after = engine.stats()
    accepted = after.speculative_accepted_tokens - before.speculative_accepted_tokens
    proposed = after.speculative_proposed_tokens - before.speculative_proposed_tokens
    assert proposed > 0 and accepted > ANSWER_TOKENS  # the quoting answers really were speculated
    assert after.decode_steps - before.decode_steps < 2 * len(prompts) * ANSWER_TOKENS * 3


def test_a_clients_earlier_answer_is_proposed_to_it_and_to_nobody_else(
    engine: LlamaCppEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In auto mode a sequence whose own history matches less than its client's recent answers
    takes its proposals from there: asked again, an answer is proposed from the first one and stays
    the same; another client asking the same gets nothing from it (its speed would tell what others
    were told). Step costs are pinned (cheap) so the choices depend on the proposals alone."""
    prompt = kb_prompt(engine, QUESTIONS[0])
    params = {"max_tokens": ANSWER_TOKENS, "temperature": 0}
    ((reference, _, _),) = plain_outputs(engine, [prompt], **params)
    engine.configure_speculation("auto", 8)
    monkeypatch.setattr(SpeculationPolicy, "record_step", lambda *args: None)
    cheap = StepCosts()
    for tokens in range(1, 10):
        cheap.record(tokens, 0.010 + 0.0005 * tokens)
    monkeypatch.setattr(StepCosts, "estimate", lambda self, tokens: cheap.measured(tokens))

    def answer(client: str) -> tuple[str, int]:
        before = engine.stats().speculative_accepted_tokens
        text, _, _ = asyncio.run(collect(engine, prompt, client_id=client, **params))
        return text, engine.stats().speculative_accepted_tokens - before

    first, accepted_first = answer("key:alice")
    again, accepted_again = answer("key:alice")
    other, accepted_other = answer("key:bob")
    assert first == again == other == reference
    # Proposed from the first answer, the second is nearly all accepted tokens (what its own
    # history offers alone, bob's count, is much less).
    assert accepted_again >= 3 * ANSWER_TOKENS // 4 > accepted_first, (accepted_first, accepted_again)
    assert accepted_other == accepted_first


def _quoting_answer(engine: LlamaCppEngine) -> tuple[str, str]:
    """A prompt whose plain greedy answer quotes its sources (what speculation accepts), and that answer."""
    for question in QUESTIONS:
        prompt = kb_prompt(engine, question)
        ((full, _, _),) = plain_outputs(engine, [prompt], max_tokens=ANSWER_TOKENS, temperature=0)
        words = full.split()
        if any(" ".join(words[i : i + 4]) in ARTICLES for i in range(len(words) - 3)):
            return prompt, full
    raise AssertionError("no answer quotes its sources; the prompts no longer fit the model")


def test_a_stop_string_inside_an_accepted_run_stops_where_plain_decoding_does(engine: LlamaCppEngine) -> None:
    prompt, full = _quoting_answer(engine)
    words = [w for w in full.split() if len(w) >= 3]
    stops = [words[len(words) // 4], words[len(words) // 2], words[3 * len(words) // 4]]
    accepted_before = engine.stats().speculative_accepted_tokens
    for stop in stops:
        ((expected, reason, tokens),) = plain_outputs(
            engine, [prompt], max_tokens=ANSWER_TOKENS, temperature=0, stop=[stop]
        )
        assert reason == "stop" and stop not in expected
        engine.configure_speculation("lookup", 8)
        text, fin, deltas = run_all(engine, [prompt], max_tokens=ANSWER_TOKENS, temperature=0, stop=[stop])[0]
        assert (text, fin.finish_reason, fin.usage.completion_tokens) == (expected, reason, tokens)
        assert all(stop not in "".join(deltas[: i + 1]) for i in range(len(deltas)))
    assert engine.stats().speculative_accepted_tokens > accepted_before


@pytest.mark.parametrize("max_tokens", [1, 5, 11, 17])
def test_max_tokens_inside_an_accepted_run(engine: LlamaCppEngine, max_tokens: int) -> None:
    prompt = kb_prompt(engine, QUESTIONS[2])
    expected = plain_outputs(engine, [prompt], max_tokens=max_tokens, temperature=0)[0]
    engine.configure_speculation("lookup", 8)
    text, fin, _ = run_all(engine, [prompt], max_tokens=max_tokens, temperature=0)[0]
    assert (text, fin.finish_reason, fin.usage.completion_tokens) == expected
    assert fin.usage.completion_tokens == max_tokens and fin.finish_reason == "length"


def test_end_of_turn_proposed_from_an_earlier_turn_stops_the_answer(engine: LlamaCppEngine) -> None:
    question = QUESTIONS[1]
    ((first, reason, _),) = plain_outputs(
        engine, [kb_prompt(engine, question)], max_tokens=200, temperature=0
    )
    assert reason == "stop"  # the model ends its turn by itself
    # The same question again: the earlier answer and its end-of-turn marker are in the prompt,
    # so the whole answer, end marker included, is proposed.
    history = (ChatMessage("user", question), ChatMessage("assistant", first))
    prompt = kb_prompt(engine, question, history)
    expected = plain_outputs(engine, [prompt], max_tokens=200, temperature=0)[0]
    engine.configure_speculation("lookup", 8)
    text, fin, _ = run_all(engine, [prompt], max_tokens=200, temperature=0)[0]
    assert (text, fin.finish_reason, fin.usage.completion_tokens) == expected
    assert fin.finish_reason == "stop"


def test_sampling_with_a_seed_gives_the_same_tokens(engine: LlamaCppEngine) -> None:
    """Each emitted token takes one draw from the same sampler chain as plain decoding, so with a
    fixed seed the sampled answer is the same token for token (and so is its distribution)."""
    prompts = [kb_prompt(engine, q) for q in QUESTIONS[:4]]
    params = {"max_tokens": 40, "temperature": 0.7, "top_p": 0.95, "top_k": 40, "repeat_penalty": 1.1}
    for seed in (1, 2, 3):
        expected = plain_outputs(engine, prompts, seed=seed, **params)
        engine.configure_speculation("lookup", 8)
        got = run_all(engine, prompts, seed=seed, **params)
        assert [(t, f.finish_reason, f.usage.completion_tokens) for t, f, _ in got] == expected


def test_the_kv_cache_after_rollback_serves_the_next_turn(engine: LlamaCppEngine, smollm2_path: Path) -> None:
    question = QUESTIONS[3]
    engine.configure_speculation("lookup", 8)
    answer, _, _ = run_all(engine, [kb_prompt(engine, question)], max_tokens=ANSWER_TOKENS, temperature=0)[0]
    # The next turn repeats the first one word for word, so it reuses the slot's cells, rollback included.
    turns = [
        ChatMessage("system", SYSTEM),
        ChatMessage("user", kb_user(question)),
        ChatMessage("assistant", answer),
    ]
    follow_up = engine.render_chat([*turns, ChatMessage("user", "And which article is about water?")]).text
    engine.configure_speculation("off", 8)
    text, fin, _ = run_all(engine, [follow_up], max_tokens=ANSWER_TOKENS, temperature=0)[0]
    assert fin.usage.cached_prompt_tokens > 200  # the slot's cells were reused
    fresh = LlamaCppEngine("smollm2:135m", smollm2_path, ContextConfig(1024, 1, 256, 1))
    try:
        fresh.configure_speculation("off", 8)
        reference, first, _ = asyncio.run(collect(fresh, follow_up, max_tokens=ANSWER_TOKENS, temperature=0))
    finally:
        asyncio.run(fresh.close())
    assert first.usage.cached_prompt_tokens == 0
    assert text == reference


def test_running_into_the_context_limit(smollm2_path: Path) -> None:
    config = ContextConfig(context_tokens=320, sequences=2, batch_tokens=256, threads=1)
    small = LlamaCppEngine("smollm2:135m", smollm2_path, config)
    try:
        prompt = kb_prompt(small, "Repeat article 12, word for word, again and again without end.")
        prompt_tokens = small.count_tokens(prompt)
        assert prompt_tokens < 300
        results = {}
        for mode in ("off", "lookup", "off"):
            small.configure_speculation(mode, 8)  # type: ignore[arg-type]
            text, fin, _ = asyncio.run(collect(small, prompt, temperature=0, ignore_eos=True))
            results.setdefault(mode, []).append((text, fin.finish_reason, fin.usage.completion_tokens))
        assert results["off"][0] == results["lookup"][0] == results["off"][1]
        assert results["off"][0][1:] == ("length", 320 - prompt_tokens)
        assert small.stats().speculative_accepted_tokens > 0
    finally:
        asyncio.run(small.close())


def test_draft_mode_without_a_draft_model_is_refused_clearly(engine: LlamaCppEngine) -> None:
    from bendi.core.errors import UserInputError

    with pytest.raises(UserInputError, match="draft"):
        engine.configure_speculation("draft", 8)


def test_greedy_output_is_unchanged_past_512_tokens_of_context(smollm2_path: Path) -> None:
    """Long knowledge-base prompts with two threads: there a one-token decode and a verification batch
    used different attention code in stock llama.cpp (split KV vs per-row), and 2 of 8 answers changed.
    Each prompt is cached first, so both ways start from the same prompt state."""
    from spec_prompts import long_kb_users

    config = ContextConfig(context_tokens=2048, sequences=2, batch_tokens=512, threads=2)
    engine = LlamaCppEngine("smollm2:135m", smollm2_path, config)
    try:
        prompts = [engine.render_chat([ChatMessage("system", SYSTEM), ChatMessage("user", u)]).text
                   for u in long_kb_users(6)]  # fmt: skip
        assert min(engine.count_tokens(p) for p in prompts) > 600
        for prompt in prompts:
            engine.configure_speculation("off", 8)
            run_all(engine, [prompt], max_tokens=1, temperature=0)  # into the cache
            plain = run_all(engine, [prompt], max_tokens=96, temperature=0)[0][0]
            engine.configure_speculation("lookup", 8)
            assert run_all(engine, [prompt], max_tokens=96, temperature=0)[0][0] == plain
    finally:
        asyncio.run(engine.close())
