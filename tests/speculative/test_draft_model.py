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
from bendi.engines.llamacpp.draft import vocabulary_mismatch
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


class Vocab:
    """A vocabulary to test the rule on: `n` tokens named t0, t1, ..., end-of-generation tokens `ends`."""

    def __init__(self, n: int, ends: tuple[int, ...] = (2,), renamed: int | None = None) -> None:
        self.n_vocab, self.end_of_generation_tokens, self._renamed = n, ends, renamed

    def piece(self, token: int, *, special: bool = False) -> bytes:
        return b"other" if token == self._renamed else f"t{token}".encode()


def test_the_tokenizer_check_allows_padding_rows_and_nothing_else() -> None:
    qwen_1_5b, qwen_7b = Vocab(151_936), Vocab(152_064)  # the R1 Qwen distills' GGUF sizes
    assert vocabulary_mismatch(qwen_7b, qwen_1_5b) is None
    assert "151936 tokens" in (vocabulary_mismatch(Vocab(152_065), qwen_1_5b) or "")
    assert vocabulary_mismatch(qwen_7b, Vocab(151_936, ends=(2, 7))) == "its end-of-generation tokens differ"
    assert vocabulary_mismatch(qwen_7b, Vocab(151_936, renamed=74 * 100)) is not None  # a sampled token


def test_a_long_prompt_reaches_the_draft_a_chunk_per_step(smollm2_path: Path) -> None:
    """The draft's prefill of a new prompt is spread over steps (a prompt chunk each), so it never
    stalls the running streams longer than a chunk; the sequence proposes once the draft is level."""
    from spec_prompts import ARTICLES

    from bendi.engines.llamacpp.draft import DraftModel
    from bendi.engines.llamacpp.model import LlamaModel

    config = ContextConfig(
        context_tokens=1024, sequences=1, batch_tokens=256, threads=1, prefill_chunk_tokens=64
    )
    target = LlamaModel(smollm2_path, config)
    draft = DraftModel(smollm2_path, config, target)
    try:
        history = target.tokenize(ARTICLES * 2)[:300]
        assert len(history) == 300
        calls = [draft.propose([(0, history, 4)]) for _ in range(5)]
        assert calls[:4] == [[[]]] * 4  # 64 tokens a step: 256 after four steps
        assert len(calls[4][0]) == 4 and draft.decoded_tokens == 300 + 3  # the last 44, then 3 positions
        # All four accepted: the draft has decoded three of them already, so only the fourth is new,
        # then one more position for the second proposal.
        again = draft.propose([(0, [*history, *calls[4][0]], 2)])
        assert len(again[0]) == 2 and draft.decoded_tokens == 303 + 1 + 1
    finally:
        draft.close()
        target.close()
