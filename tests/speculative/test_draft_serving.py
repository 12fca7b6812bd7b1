"""`bendi serve --draft`: a real server whose model is drafted for by another file of its tokenizer
answers exactly as one without, and counts the proposals in /metrics; a draft of another tokenizer
or draft mode without a draft model gets a clear answer. The official openai package is the client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
from vocab_files import same_model_elsewhere, with_one_token_renamed

from server_process import ServerProcess

QUESTION = "List three rules for working safely underground, one per line."


def answer(server: ServerProcess, model: str = "smollm2:135m") -> str:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": QUESTION}], max_tokens=40, temperature=0
    )
    return reply.choices[0].message.content or ""


def counter(server: ServerProcess, name: str) -> float:
    text = httpx.get(server.base_url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_drafted_server_answers_as_a_plain_one_and_counts_proposals(
    bendi_server_factory: Callable[..., ServerProcess], smollm2_path: Path, tmp_path: Path
) -> None:
    draft = same_model_elsewhere(smollm2_path, tmp_path / "smollm2-draft.gguf")
    drafted = bendi_server_factory(env={"BENDI_SPECULATIVE": "draft"}, args=("--draft", str(draft)))
    plain = bendi_server_factory(env={"BENDI_SPECULATIVE": "off"})
    assert answer(drafted) == answer(plain)
    proposed = counter(drafted, "bendi_speculative_proposed_tokens_total")
    accepted = counter(drafted, "bendi_speculative_accepted_tokens_total")
    assert proposed > 0 and accepted > 0.5 * proposed, (proposed, accepted)
    assert counter(plain, "bendi_speculative_proposed_tokens_total") == 0


def test_draft_mode_without_a_draft_model_says_what_to_set(
    bendi_server_factory: Callable[..., ServerProcess],
) -> None:
    server = bendi_server_factory(env={"BENDI_SPECULATIVE": "draft"})
    with pytest.raises(openai.APIStatusError) as refused:
        answer(server)
    # The operator's configuration, not the request: a load failure (503) that says what to set.
    assert refused.value.status_code == 503 and "BENDI_DRAFT_MODEL" in str(refused.value)

    missing = bendi_server_factory(env={"BENDI_DRAFT_MODEL": "deepseek-r1:1.5b"})  # not installed
    with pytest.raises(openai.APIStatusError) as not_found:
        answer(missing)
    assert not_found.value.status_code == 503  # not 404: the model asked for is there
    assert "draft model 'deepseek-r1:1.5b' for smollm2:135m cannot be found" in str(not_found.value)


def test_a_draft_of_another_tokenizer_is_an_error_for_its_model_and_skipped_server_wide(
    bendi_server_factory: Callable[..., ServerProcess], smollm2_path: Path, tmp_path: Path
) -> None:
    other = with_one_token_renamed(smollm2_path, tmp_path / "other-tokenizer.gguf")
    config = tmp_path / "config.toml"
    config.write_text(f'[models."smollm2:135m"]\ndraft_model = "{other}"\n', encoding="utf-8")
    named = bendi_server_factory(env={"BENDI_CONFIG": str(config)})
    with pytest.raises(openai.APIStatusError) as refused:
        answer(named)
    assert refused.value.status_code == 503 and "same tokenizer" in str(refused.value)

    server_wide = bendi_server_factory(env={"BENDI_DRAFT_MODEL": str(other)})
    assert answer(server_wide)  # served without the draft
    assert "served without the draft model" in server_wide.log()
