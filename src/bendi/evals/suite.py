"""Evaluation suites: read a JSONL question set and validate every line before any model runs.

A suite that fails half-way through a two-hour run wastes the run, so every line is checked first
and the first bad one is named by its line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bendi.core.errors import EvalSuiteError

MAX_QUESTIONS = 5000  # a suite is a curated question set, not a corpus
KNOWN_FIELDS = frozenset({"id", "question", "reference", "key_points", "source", "article", "answerable"})


@dataclass(frozen=True)
class EvalQuestion:
    """One question; `source`/`article` name what a correct answer must cite."""

    id: str
    question: str
    reference: str = ""
    key_points: tuple[str, ...] = ()
    source: str | None = None  # a document, matched against the cited file names
    article: str | None = None  # e.g. "第十条", matched against the cited articles
    answerable: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "reference": self.reference,
                "key_points": list(self.key_points), "source": self.source, "article": self.article,
                "answerable": self.answerable}  # fmt: skip


@dataclass(frozen=True)
class Suite:
    name: str
    questions: tuple[EvalQuestion, ...] = field(default=())


def _text(value: Any, name: str, line: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise EvalSuiteError(f"the field {name!r} is missing.", line)
        return None
    if not isinstance(value, str):
        raise EvalSuiteError(f"{name!r} must be a string, not {type(value).__name__}.", line)
    if required and not value.strip():
        raise EvalSuiteError(f"{name!r} is empty.", line)
    return value.strip()


def parse_question(data: Any, line: int) -> EvalQuestion:
    """One suite entry, or an EvalSuiteError that says which field of which line is wrong."""
    if not isinstance(data, dict):
        raise EvalSuiteError(
            'each line must be a JSON object like {"question": ..., "reference": ...}.', line
        )
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:  # a typo such as "refrence" would silently score every answer against nothing
        raise EvalSuiteError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_FIELDS))}.", line
        )
    question = _text(data.get("question"), "question", line, required=True) or ""
    reference = _text(data.get("reference"), "reference", line) or ""
    raw_points = data.get("key_points", [])
    if not isinstance(raw_points, list) or not all(isinstance(p, str) and p.strip() for p in raw_points):
        raise EvalSuiteError("'key_points' must be a list of non-empty strings.", line)
    answerable = data.get("answerable", True)
    if not isinstance(answerable, bool):
        raise EvalSuiteError("'answerable' must be true or false.", line)
    if answerable and not reference and not raw_points:
        raise EvalSuiteError("an answerable question needs a 'reference' answer or 'key_points'.", line)
    raw_id = data.get("id", f"q{line}")
    if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
        raise EvalSuiteError("'id' must be a string or a number.", line)
    return EvalQuestion(id=str(raw_id), question=question, reference=reference,
                        key_points=tuple(p.strip() for p in raw_points),
                        source=_text(data.get("source"), "source", line),
                        article=_text(data.get("article"), "article", line), answerable=answerable)  # fmt: skip


def parse_suite(lines: Iterable[str], name: str) -> Suite:
    """Parse JSONL text (blank lines and lines starting with # are skipped)."""
    questions: list[EvalQuestion] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalSuiteError(f"not valid JSON ({exc.msg} at column {exc.colno}).", number) from None
        item = parse_question(data, number)
        if item.id in seen:
            raise EvalSuiteError(f"the id {item.id!r} was used already on line {seen[item.id]}.", number)
        seen[item.id] = number
        questions.append(item)
        if len(questions) > MAX_QUESTIONS:
            raise EvalSuiteError(f"a suite holds at most {MAX_QUESTIONS} questions.", number)
    if not questions:
        raise EvalSuiteError(f"The suite {name} has no questions.")
    return Suite(name, tuple(questions))


def load_suite(path: Path) -> Suite:
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: files saved by Windows editors start with a BOM
    except FileNotFoundError:
        raise EvalSuiteError(f"The suite file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise EvalSuiteError(f"The suite file {path} is not UTF-8 text.") from None
    except OSError as exc:
        raise EvalSuiteError(f"The suite file {path} cannot be read: {exc.strerror}.") from None
    return parse_suite(text.splitlines(), path.stem)
