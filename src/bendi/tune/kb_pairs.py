"""Tuning data written from a knowledge base: for passages spread over the base, a chosen model asks
the question each passage answers, and the answer is the passage itself with its citation. The
pairs so teach the organization's own wording and facts, never the writing model's guesses (a small
writer model can still phrase questions; it is never trusted with an answer)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bendi.access.scope import KbScope
from bendi.core.errors import UserInputError
from bendi.engines.messages import ChatMessage, SamplingParams
from bendi.evals.timed_generation import generate_timed
from bendi.knowledge.records import Hit
from bendi.services import Services

MAX_PAIRS = 5000
_CJK = re.compile(r"[\u4e00-\u9fff]")
_PREFIX = re.compile(r"^\s*(?:问题|问|Question|Q)\s*[:：]\s*", re.IGNORECASE)
ASK_ZH = "下面是一段规章条文。请提出一个这段条文能回答的问题。只写问题本身，一句话。\n\n条文：{text}"
ASK_EN = "Here is a passage from a regulation. Write one question this passage answers. Write only the question.\n\nPassage: {text}"


def question_from(reply: str, passage: str) -> str | None:
    """The first line of the reply that reads as a question, without a "问题：" label; None when the
    reply is empty, too short, or only repeats the passage."""
    for line in reply.splitlines():
        line = _PREFIX.sub("", line).strip().strip('"“”')
        if len(line) < 4 or line in passage:
            continue
        return line[:300]
    return None


def answer_from(hit: Hit) -> str:
    """The passage as the answer, said with its source: what a grounded answer looks like."""
    title = Path(hit.file).stem.split("(")[0]
    where = (
        f"《{title}》{hit.article or ''}" if _CJK.search(hit.text) else f"{title} {hit.article or ''}".strip()
    )
    text = hit.text.strip()
    return f"根据{where}：{text}" if _CJK.search(text) else f"According to {where}: {text}"


async def write_pairs(services: Services, knowledge_base: str, model: str, count: int, scope: KbScope,
                      progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Up to `count` {"question", "answer"} pairs from the base; passages the model found no question
    for are skipped."""
    if not 1 <= count <= MAX_PAIRS:
        raise UserInputError(f"--count must be between 1 and {MAX_PAIRS}.")
    kb = services.knowledge.get(knowledge_base, scope)
    passages = kb.index.sample_chunks(count)
    if not passages:
        raise UserInputError(f"The knowledge base {knowledge_base} has no indexed passages yet.")
    engine = await services.engines.acquire(model)
    params = SamplingParams(temperature=0.0, max_tokens=64)
    pairs: list[dict[str, Any]] = []
    for done, hit in enumerate(passages, start=1):
        ask = ASK_ZH if _CJK.search(hit.text) else ASK_EN
        reply = await generate_timed(engine, [ChatMessage("user", ask.format(text=hit.text))], params)
        question = question_from(reply.content, hit.text)
        if question is not None:
            pairs.append({"question": question, "answer": answer_from(hit), "source": hit.file,
                          "article": hit.article})  # fmt: skip
        if progress:
            progress(done, len(passages))
    return pairs
