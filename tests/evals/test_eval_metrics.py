"""Metric values on known inputs (Chinese, English, empty) and suite validation with line numbers."""

from __future__ import annotations

import pytest

from bendi.core.errors import EvalSuiteError
from bendi.evals.judge import parse_verdict
from bendi.evals.metrics import char_f1, key_point_coverage, rouge_l, tokens
from bendi.evals.suite import parse_suite


def test_char_f1_chinese_ignores_punctuation_and_spaces() -> None:
    assert char_f1("两个以上。", "两 个 以 上") == 1.0
    # 8 shared of 10 predicted / 10 reference characters
    assert char_f1("井下作业人员不得少于2人。", "井下作业不少于 2 人") == pytest.approx(0.8)


def test_english_is_scored_by_words() -> None:
    assert tokens("Safety first!") == ["safety", "first"]
    assert char_f1("the cat sat", "the cat sat on the mat") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert rouge_l("the cat sat", "the cat sat on mat") == pytest.approx(0.75)


def test_empty_inputs() -> None:
    assert char_f1("", "") == 1.0
    assert char_f1("答案", "") == 0.0
    assert rouge_l("", "参考") == 0.0
    assert key_point_coverage("任何答案", []) is None


def test_key_points_tolerate_small_wording_changes() -> None:
    assert key_point_coverage("必须佩戴自救器和矿灯", ["佩戴自救器", "矿灯", "瓦斯检测"]) == pytest.approx(
        2 / 3
    )


def test_judge_reply_is_parsed_strictly() -> None:
    assert parse_verdict("SCORE: 4").score == 4
    assert parse_verdict(" 分数：5 ").normalized == 1.0
    assert parse_verdict("I think about 4").score is None
    assert parse_verdict("SCORE: 4. Good").score is None


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('{"question": "q", "reference": "r"}\nnot json', 2, "not valid JSON"),
        ('{"question": "q"}', 1, "needs a 'reference'"),
        ('\n{"question": "q", "refrence": "r"}', 2, "unknown field"),
        ('{"question": "q", "reference": "r", "answerable": "no"}', 1, "true or false"),
        (
            '{"id": 1, "question": "a", "reference": "r"}\n{"id": 1, "question": "b", "reference": "r"}',
            2,
            "used already",
        ),
    ],
)
def test_suite_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(EvalSuiteError) as caught:
        parse_suite(text.splitlines(), "t")
    assert caught.value.line == line and fragment in caught.value.message


def test_unanswerable_question_needs_no_reference() -> None:
    suite = parse_suite(["# comment", '{"question": "埃菲尔铁塔多高？", "answerable": false}'], "t")
    assert suite.questions[0].answerable is False
