"""Draft-model speculation in the real engine: a draft with the target's tokenizer proposes, the
target verifies, and the answers are exactly plain decoding's; a draft of another tokenizer is
refused before anything is served. SmolLM2 drafts for itself here (the only tokenizer family two
test models share); real pairs are the R1 distills (docs/engine.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from spec_prompts import QUESTIONS, kb_prompt, run_all
from vocab_files import with_one_token_renamed

from bendi.core.errors import UserInputError
from bendi.engines.llamacpp.engine import LlamaCppEngine
from bendi.engines.llamacpp.model import ContextConfig

ANSWER_TOKENS = 40


@pytest.fixture(scope="module")
def drafted(smollm2_path: Path) -> Iterator[LlamaCppEngine]:
    config = ContextConfig(context_tokens=1024, sequences=4, batch_tokens=256, threads=1)
    engine = LlamaCppEngine("smollm2:135m", smollm2_path, config, draft_path=smollm2_path)
    yield engine
    asyncio.run(engine.close())


def test_draft_proposals_leave_greedy_answers_unchanged_across_batch_sizes(drafted: LlamaCppEngine) -> None:
    prompts = [kb_prompt(drafted, q) for q in QUESTIONS[:4]]
    drafted.configure_speculation("off", 8)
    reference = [run_all(drafted, [p], max_tokens=ANSWER_TOKENS, temperature=0)[0] for p in prompts]
    before = drafted.stats()
    drafted.configure_speculation("draft", 6)
    for size in (1, 4):
        for start in range(0, len(prompts), size):
            got = run_all(drafted, prompts[start : start + size], max_tokens=ANSWER_TOKENS, temperature=0)
            for offset, (text, fin, _) in enumerate(got):
                want_text, want_fin, _ = reference[start + offset]
                assert (text, fin.finish_reason, fin.usage.completion_tokens) == (
                    want_text, want_fin.finish_reason, want_fin.usage.completion_tokens
                ), (size, start + offset)  # fmt: skip
    after = drafted.stats()
    proposed = after.speculative_proposed_tokens - before.speculative_proposed_tokens
    accepted = after.speculative_accepted_tokens - before.speculative_accepted_tokens
    # The model drafting for itself: nearly every proposal is what the target picks, so answers
    # took far fewer steps than tokens.
    assert proposed > 0 and accepted >= 0.8 * proposed, (proposed, accepted)


def test_a_stop_string_and_max_tokens_inside_a_drafted_run(drafted: LlamaCppEngine) -> None:
    prompt = kb_prompt(drafted, QUESTIONS[0])
    drafted.configure_speculation("off", 8)
    ((full, _, _),) = run_all(drafted, [prompt], max_tokens=ANSWER_TOKENS, temperature=0)
    stop = [w for w in full.split() if len(w) >= 4][3]
    plain = run_all(drafted, [prompt], max_tokens=ANSWER_TOKENS, temperature=0, stop=[stop])[0]
    short = run_all(drafted, [prompt], max_tokens=7, temperature=0)[0]
    drafted.configure_speculation("draft", 8)
    got = run_all(drafted, [prompt], max_tokens=ANSWER_TOKENS, temperature=0, stop=[stop])[0]
    assert (got[0], got[1].finish_reason) == (plain[0], plain[1].finish_reason) and stop not in got[0]
    got_short = run_all(drafted, [prompt], max_tokens=7, temperature=0)[0]
    assert (got_short[0], got_short[1].usage.completion_tokens) == (short[0], short[1].usage.completion_tokens) == (
        short[0], 7)  # fmt: skip


def test_a_draft_with_another_tokenizer_is_refused(smollm2_path: Path, tmp_path: Path) -> None:
    other = with_one_token_renamed(smollm2_path, tmp_path / "other-tokenizer.gguf")
    config = ContextConfig(context_tokens=256, sequences=1, batch_tokens=64, threads=1)
    with pytest.raises(UserInputError, match="same tokenizer") as refused:
        LlamaCppEngine("smollm2:135m", smollm2_path, config, draft_path=other)
    assert "other-tokenizer.gguf cannot draft" in str(refused.value) and "token " in str(refused.value)
