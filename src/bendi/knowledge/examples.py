"""Answered example questions: an organization's own questions, each with the passages that answer it.

Workers ask "喝了点酒还能下井吗？", not in a rule book's words, and the same everyday question comes
back in new wordings. Two questions are far closer to each other than either is to the regulation
(LeCoQA: a question's 5 nearest answered questions cite 36% of its gold articles), so a question
close to an example searches the example's cited passages as one more ranked list of the fusion
(search.py). MaxKB's "关联问题" and QAnything's FAQ keep such pairs; here they only steer retrieval,
never the answer: what is cited is still the library's own text.

A citation names a document and an article (`第十条`: every chunk of it) or a quote from its text,
not chunk ids, so it survives re-importing the document; deleting the document deletes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bendi.core.errors import UserInputError

# The nearest examples whose citations are searched, and the list's weight in the fusion (the
# question's own dense list: 1.5). Chosen on LeCoQA's tune half (1,184 non-test questions as
# examples, 26.7k chunks): among settings within 0.02 of the best recall@10, the best MRR@10;
# docs/knowledge.md has the grid and the held-out half. A similarity floor did not help: the
# nearest example is ~0.94 similar whether or not it cites the right article.
EXAMPLE_DEPTH = 5
EXAMPLE_WEIGHT = 1.25
MAX_EXAMPLES = 100_000  # one import
MAX_QUESTION_CHARS = 1_000
MAX_CITATIONS = 20
QUOTE_CHARS = (8, 2_000)
QUOTE_PROBE = 40  # a quote is found by its first characters, so line breaks later on do not matter


@dataclass(frozen=True)
class ExampleCitation:
    document: str  # a document's id or its file as added (`bendi kb docs`)
    article: str | None = None
    quote: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"document": self.document}
        if self.article:
            out["article"] = self.article
        if self.quote:
            out["quote"] = self.quote
        return out


@dataclass(frozen=True)
class Example:
    question: str
    citations: tuple[ExampleCitation, ...]


@dataclass(frozen=True)
class StoredExample:
    id: int
    question: str
    citations: tuple[ExampleCitation, ...]
    added_at: float

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "question": self.question, "added_at": self.added_at,
                "citations": [c.to_json() for c in self.citations]}  # fmt: skip


def parse_examples(text: str) -> list[Example]:
    """Examples from JSON Lines, one per line:
    {"question": "...", "citations": [{"document": "煤矿安全规程.pdf", "article": "第十条"}, ...]}
    or, as in an eval suite, {"question": "...", "source": "煤矿安全规程.pdf", "article": "第十条"}.
    A JSON array of the same objects works too. Any bad line fails the whole import, naming it."""
    stripped = text.strip()
    if not stripped:
        raise UserInputError("The examples file is empty.")
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise UserInputError(
                f"The examples file is not valid JSON: {exc.msg} at line {exc.lineno}."
            ) from exc
        numbered = list(enumerate(items if isinstance(items, list) else [items], start=1))
    else:
        numbered = []
        for n, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((n, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise UserInputError(f"Examples line {n} is not valid JSON: {exc.msg}.") from exc
    return _checked(numbered)


def examples_from(items: Sequence[object]) -> list[Example]:
    """Examples from already decoded objects (an HTTP request's list), checked like a file's."""
    return _checked(list(enumerate(items, start=1)))


def _checked(numbered: list[tuple[int, object]]) -> list[Example]:
    if len(numbered) > MAX_EXAMPLES:
        raise UserInputError(f"At most {MAX_EXAMPLES} examples per import; this one has {len(numbered)}.")
    return [_example(item, n) for n, item in numbered]


def _example(item: object, n: int) -> Example:
    where = f"Example {n}"
    if not isinstance(item, dict):
        raise UserInputError(f"{where} is not an object with a question and its citations.")
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise UserInputError(f"{where} has no question.")
    if len(question) > MAX_QUESTION_CHARS:
        raise UserInputError(f"{where}: the question is longer than {MAX_QUESTION_CHARS} characters.")
    cites = item.get("citations")
    if cites is None and "source" in item:  # an eval suite's line (docs/eval.md): one source and article
        named = {k: item[k] for k in ("article", "quote") if item.get(k) is not None}
        cites = [{"document": item["source"], **named}]
    if not isinstance(cites, list) or not cites:
        raise UserInputError(f"{where} has no citations (a list of {{document, article or quote}}).")
    if len(cites) > MAX_CITATIONS:
        raise UserInputError(f"{where} has more than {MAX_CITATIONS} citations.")
    return Example(question.strip(), tuple(_citation(c, where) for c in cites))


def _citation(item: object, where: str) -> ExampleCitation:
    if not isinstance(item, dict) or not isinstance(item.get("document"), str | int):
        raise UserInputError(f"{where}: each citation needs a document (its file or id).")
    article, quote = item.get("article"), item.get("quote")
    if article is not None and (not isinstance(article, str) or not article.strip()):
        raise UserInputError(f"{where}: a citation's article must be text such as 第十条.")
    if quote is not None and (
        not isinstance(quote, str) or not QUOTE_CHARS[0] <= len(quote.strip()) <= QUOTE_CHARS[1]
    ):
        raise UserInputError(
            f"{where}: a citation's quote must be {QUOTE_CHARS[0]} to {QUOTE_CHARS[1]} characters of the document."
        )
    if (article is None) == (quote is None):
        raise UserInputError(f"{where}: a citation names an article or a quote (exactly one).")
    return ExampleCitation(str(item["document"]).strip(), article.strip() if article else None,
                    quote.strip() if quote else None)  # fmt: skip


def nearest_examples(
    query: np.ndarray, ids: np.ndarray, vectors: np.ndarray, *, depth: int = EXAMPLE_DEPTH
) -> list[tuple[int, float]]:
    """The `depth` examples most similar to the query vector (cosine), best first."""
    if len(ids) == 0 or depth <= 0:
        return []
    scores = vectors @ np.asarray(query, dtype=np.float32)
    k = min(depth, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(ids[i]), float(scores[i])) for i in top]


def cited_ranking(
    nearest: Sequence[tuple[int, float]], chunks_of: dict[int, list[int]]
) -> list[tuple[int, float]]:
    """The chunks the nearest examples cite, ranked by the summed similarity of the examples citing
    them (a passage two close questions cite beats one cited once), each chunk once."""
    scores: dict[int, float] = {}
    for example_id, similarity in nearest:
        for chunk_id in chunks_of.get(example_id, ()):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + similarity
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
