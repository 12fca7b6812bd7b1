"""The <think> splitter on recorded DeepSeek-R1-style outputs, cut into stream chunks everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bendi.engines.reasoning import ReasoningSplitter, split_reasoning

CASES = json.loads((Path(__file__).parent / "data" / "r1_outputs.json").read_text(encoding="utf-8"))


def run_chunks(chunks: list[str], starts_in_reasoning: bool) -> tuple[str, str]:
    splitter = ReasoningSplitter(starts_in_reasoning=starts_in_reasoning)
    pieces = [p for chunk in chunks for p in splitter.feed(chunk)] + splitter.finish()
    return (
        "".join(p.text for p in pieces if p.channel == "reasoning"),
        "".join(p.text for p in pieces if p.channel == "content"),
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_whole_output(case: dict[str, object]) -> None:
    reasoning, content = split_reasoning(
        str(case["raw"]), starts_in_reasoning=bool(case["starts_in_reasoning"])
    )
    assert (reasoning, content) == (case["reasoning"], case["content"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_every_two_way_split_gives_the_same_result(case: dict[str, object]) -> None:
    raw, opened = str(case["raw"]), bool(case["starts_in_reasoning"])
    for cut in range(len(raw) + 1):
        assert run_chunks([raw[:cut], raw[cut:]], opened) == (case["reasoning"], case["content"]), cut


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_character_by_character_stream(case: dict[str, object]) -> None:
    raw = str(case["raw"])
    assert run_chunks(list(raw), bool(case["starts_in_reasoning"])) == (case["reasoning"], case["content"])


def test_close_tag_split_in_three_chunks() -> None:
    assert run_chunks(["thinking</", "thi", "nk>answer"], True) == ("thinking", "answer")


def test_reasoning_is_never_mixed_into_content_while_streaming() -> None:
    splitter = ReasoningSplitter(starts_in_reasoning=True)
    seen = [p for chunk in ["a", "b</th", "ink>", "c"] for p in splitter.feed(chunk)]
    assert [(p.channel, p.text) for p in seen] == [("reasoning", "a"), ("reasoning", "b"), ("content", "c")]
