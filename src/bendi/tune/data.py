"""Read and validate a tuning data file (JSONL) into chat conversations, with line numbers in errors.

Accepted per line: {"messages": [{"role", "content"}, ...]} (chat format) or a question/answer pair
({"question", "answer"} or {"prompt", "completion"}). Every problem is reported with its line
number, all at once, so a user fixes a 500-line file in one pass rather than one error per run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from bendi.core.errors import UserInputError

ROLES = ("system", "user", "assistant")
MAX_ERRORS_SHOWN = 10
PAIR_KEYS = (("question", "answer"), ("prompt", "completion"))


class TuneDataError(UserInputError):
    """A tuning data file that cannot be trained on; the message lists the offending lines."""

    code = "invalid_tune_data"


@dataclass(frozen=True)
class TuneData:
    conversations: tuple[tuple[dict[str, str], ...], ...]
    sha256: str  # of the file's bytes: the run's metrics name exactly what it was trained on

    def to_jsonl(self) -> str:
        return "".join(
            json.dumps({"messages": list(c)}, ensure_ascii=False) + "\n" for c in self.conversations
        )


def _messages(record: object) -> list[dict[str, str]]:
    """One line's conversation; raises ValueError with a sentence saying what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError('"messages" must be a non-empty list')
        out = []
        for i, m in enumerate(messages, start=1):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                raise ValueError(f'message {i} needs a "role" and a string "content"')
            if m.get("role") not in ROLES:
                raise ValueError(f"message {i} has role {m.get('role')!r}; use one of {', '.join(ROLES)}")
            out.append({"role": m["role"], "content": m["content"]})
        if not any(m["role"] == "assistant" and m["content"].strip() for m in out):
            raise ValueError("no assistant message: there is nothing to learn")
        if out[-1]["role"] != "assistant":
            raise ValueError("the last message must be the assistant's")
        return out
    for question_key, answer_key in PAIR_KEYS:
        if question_key in record or answer_key in record:
            question, answer = record.get(question_key), record.get(answer_key)
            if not isinstance(question, str) or not question.strip():
                raise ValueError(f'"{question_key}" must be a non-empty string')
            if not isinstance(answer, str) or not answer.strip():
                raise ValueError(f'"{answer_key}" must be a non-empty string')
            return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    raise ValueError('expected "messages", or "question" and "answer", or "prompt" and "completion"')


def load_tune_data(path: Path) -> TuneData:
    """Validate the whole file; raise TuneDataError listing every bad line (up to MAX_ERRORS_SHOWN)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TuneDataError(f"Cannot read the data file {path}: {exc.strerror or exc}.") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TuneDataError(f"{path} is not UTF-8 text (byte {exc.start}). Save it as UTF-8.") from exc
    conversations: list[tuple[dict[str, str], ...]] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # blank lines (a trailing newline, spacing) are harmless
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        try:
            conversations.append(tuple(_messages(record)))
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        shown = "\n  ".join(errors[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise TuneDataError(f"{path} has {len(errors)} bad line(s):\n  {shown}{more}")
    if not conversations:
        raise TuneDataError(f"{path} has no examples. Write one JSON object per line (see docs/tune.md).")
    return TuneData(tuple(conversations), hashlib.sha256(raw).hexdigest())
