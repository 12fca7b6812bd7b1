"""Tuning data files: both accepted formats, and every kind of bad line named by its number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bendi.tune.data import TuneDataError, load_tune_data


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_chat_and_pair_formats_become_conversations(tmp_path: Path) -> None:
    chat = {"messages": [{"role": "system", "content": "简洁"}, {"role": "user", "content": "问"},
                         {"role": "assistant", "content": "答"}]}  # fmt: skip
    path = write(tmp_path, [json.dumps(chat, ensure_ascii=False), "",
                            json.dumps({"question": "Q1", "answer": "A1"}),
                            json.dumps({"prompt": "P", "completion": "C"})])  # fmt: skip
    data = load_tune_data(path)
    assert len(data.conversations) == 3
    assert data.conversations[1] == (
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
    )
    assert len(data.sha256) == 64
    assert json.loads(data.to_jsonl().splitlines()[2])["messages"][1]["content"] == "C"


def test_every_bad_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = write(tmp_path, [
        json.dumps({"question": "ok", "answer": "ok"}),
        '{"question": "broken"',
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}),
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        json.dumps({"question": "", "answer": "a"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"text": "unknown format"}),
    ])  # fmt: skip
    with pytest.raises(TuneDataError) as caught:
        load_tune_data(path)
    message = caught.value.message
    assert "6 bad line(s)" in message
    assert "line 2: not valid JSON" in message
    assert "line 3: message 1 has role 'robot'" in message
    assert "line 4: no assistant message" in message
    assert 'line 5: "question" must be a non-empty string' in message
    assert "line 6: expected a JSON object" in message
    assert 'line 7: expected "messages"' in message
    assert "line 1:" not in message


def test_empty_missing_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TuneDataError, match="no examples"):
        load_tune_data(write(tmp_path, ["", "  "]))
    with pytest.raises(TuneDataError, match="Cannot read"):
        load_tune_data(tmp_path / "absent.jsonl")
    bad = tmp_path / "gbk.jsonl"
    bad.write_bytes(json.dumps({"question": "问题", "answer": "答"}, ensure_ascii=False).encode("gbk"))
    with pytest.raises(TuneDataError, match="not UTF-8"):
        load_tune_data(bad)


def test_the_mining_fact_pairs_validate(tmp_path: Path) -> None:
    from mining_facts import held_out_pairs, training_pairs

    train = training_pairs()
    assert 50 <= len(train) <= 200
    # held-out questions ask the same facts in words the training set never uses
    assert not {p["question"] for p in train} & {p["question"] for p in held_out_pairs()}
    path = write(tmp_path, [json.dumps(p, ensure_ascii=False) for p in train])
    assert len(load_tune_data(path).conversations) == len(train)
