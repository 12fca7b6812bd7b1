"""Score one answer against its suite entry: quality, citation, refusal.

Refusals are recognised two ways: the knowledge-base pipeline refuses before any model runs (a
certain signal), and a model may say "I don't know" in its own words (a phrase list, Chinese and
English). Citations are read from the answer itself: a grounded answer cites [n] markers that map
to the sources it was given; a plain model can only name the regulation and article in its text.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from bendi.evals.metrics import char_f1, key_point_coverage, normalize, rouge_l
from bendi.evals.suite import EvalQuestion
from bendi.evals.targets import ModelAnswer, Source

_REFUSAL = re.compile(
    r"不知道|无法回答|无法确定|不清楚|没有(?:找到|提供|相关|提及)|未(?:找到|提供|提及|涉及)|不包含|没有包含"
    r"|i don'?t know|i do not know|cannot answer|can'?t answer|unable to answer|no (?:relevant )?information"
    r"|not (?:mentioned|provided|contain)",
    re.IGNORECASE,
)
_MARKER = re.compile(r"\[(\d{1,3})\]")
_DATE_SUFFIX = re.compile(r"[(（][^()（）]*[)）]$")


def is_refusal(answer: ModelAnswer) -> bool:
    if answer.refused_by_kb:
        return True
    # Only the opening of an answer counts: a long answer that mentions "not mentioned" somewhere
    # in passing has still answered.
    return bool(_REFUSAL.search(answer.text[:120]))


def document_title(source: str) -> str:
    """ "lawrefbook/社会法/矿山安全法(2009-08-27).md" -> "矿山安全法": how a plain answer names it."""
    stem = PurePosixPath(source.replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return _DATE_SUFFIX.sub("", stem).strip()


def source_matches(file: str, source: str) -> bool:
    """The cited file is the required document: same name, or the suite gives a path suffix of it."""
    file_n, source_n = normalize(file).replace("\\", "/"), normalize(source).replace("\\", "/")
    if file_n == source_n or file_n.endswith("/" + source_n):
        return True
    return document_title(file_n) == document_title(source_n)


def _article_matches(cited: str | None, wanted: str | None) -> bool:
    return wanted is None or (cited is not None and normalize(cited).strip() == normalize(wanted).strip())


def cited_sources(answer: ModelAnswer) -> list[Source]:
    """The sources the answer refers to by [n]; markers to sources it was not given are ignored."""
    by_index = {s.index: s for s in answer.sources}
    wanted = {int(m) for m in _MARKER.findall(answer.text)}
    return [by_index[i] for i in sorted(wanted) if i in by_index]


def citation_correct(question: EvalQuestion, answer: ModelAnswer, grounded: bool) -> bool | None:
    """None when the question names no source; otherwise whether the answer cites it."""
    if question.source is None:
        return None
    if grounded:
        return any(source_matches(s.file, question.source) and _article_matches(s.article, question.article)
                   for s in cited_sources(answer))  # fmt: skip
    text = normalize(answer.text)
    named = normalize(document_title(question.source)) in text
    return named and (question.article is None or normalize(question.article) in text)


def retrieval_hit(question: EvalQuestion, answer: ModelAnswer) -> bool | None:
    """Whether the required source was among those the model was given (a retrieval score)."""
    if question.source is None:
        return None
    return any(source_matches(s.file, question.source) and _article_matches(s.article, question.article)
               for s in answer.sources)  # fmt: skip


def score_answer(question: EvalQuestion, answer: ModelAnswer, grounded: bool) -> dict[str, Any]:
    """Per-question scores; a metric that does not apply to the question is None, never 0."""
    refused = is_refusal(answer)
    scores: dict[str, Any] = {"refused": refused}
    if not question.answerable:
        scores["correct_refusal"] = refused
        return scores
    text = answer.text
    scores["char_f1"] = char_f1(text, question.reference) if question.reference else None
    scores["rouge_l"] = rouge_l(text, question.reference) if question.reference else None
    scores["key_point_coverage"] = key_point_coverage(text, question.key_points)
    scores["citation_correct"] = citation_correct(question, answer, grounded)
    scores["retrieval_hit"] = retrieval_hit(question, answer) if grounded else None
    return scores
