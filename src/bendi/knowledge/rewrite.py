"""Query rewriting by the served model: an everyday question restated in the documents' own terms.

Off by default (`BENDI_KB_QUERY_REWRITE`), and even when on only for a model large enough to do it
(MIN_REWRITE_PARAMETERS): a small model's rewrite drifts from the question and costs recall. The
rewrites are extra ranked lists in the fusion (search.plan_query), never a replacement of the
question, so a poor rewrite is outvoted by the question's own BM25 and dense lists."""

from __future__ import annotations

import re

from bendi.engines.messages import ChatMessage, GenerationRequest, SamplingParams, TextDelta
from bendi.engines.protocol import Engine, EngineInfo
from bendi.engines.reasoning import ReasoningSplitter

# A judgment, not a measurement (no model above the bundled 135M one runs on this CPU): 7B is the
# smallest DeepSeek distill expected to restate a question rather than answer or drift from it.
MIN_REWRITE_PARAMETERS = 7_000_000_000
MAX_REWRITES = 2
# R1-family models think before answering; the budget covers a short think and two lines.
REWRITE_TOKENS = 384
MAX_REWRITE_CHARS = 120

INSTRUCTION = (
    "把用户的问题改写成法规、制度文件里会用的正式说法，便于检索条文。"
    "输出两行，每行一个改写后的检索语句，不要回答问题，不要编号，不要解释。\n"
    "Rewrite the user's question in the formal terms regulations use, to search them. "
    "Output two lines, one search query each; do not answer, number or explain."
)
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.、)）]|[（(]\d+[)）])\s*")


def can_rewrite(info: EngineInfo) -> bool:
    """Whether the model is large enough to be trusted with rewriting (unknown size: no)."""
    parameters = info.parameters
    return parameters is not None and parameters >= MIN_REWRITE_PARAMETERS


def parse_rewrites(text: str, question: str) -> list[str]:
    """The model's lines as search queries: numbering stripped, empty, over-long and verbatim
    copies of the question dropped, at most MAX_REWRITES."""
    out: list[str] = []
    for line in text.splitlines():
        line = _NUMBERING.sub("", line).strip().strip("\"'“”")
        if line and len(line) <= MAX_REWRITE_CHARS and line != question.strip() and line not in out:
            out.append(line)
    return out[:MAX_REWRITES]


async def rewrite_query(engine: Engine, question: str, *, client_id: str = "kb-rewrite") -> list[str]:
    """Up to MAX_REWRITES restatements of `question` by `engine` (greedy, reasoning dropped);
    [] when the model is not capable enough or says nothing usable."""
    if not can_rewrite(engine.info):
        return []
    messages = [ChatMessage("system", INSTRUCTION), ChatMessage("user", question)]
    rendered = engine.render_chat(messages)
    splitter = ReasoningSplitter(starts_in_reasoning=rendered.opens_reasoning)
    params = SamplingParams(max_tokens=REWRITE_TOKENS, temperature=0.0)
    stream = engine.generate(GenerationRequest(prompt=rendered.text, client_id=client_id, params=params))
    content: list[str] = []
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                content.extend(p.text for p in splitter.feed(event.text) if p.channel == "content")
        content.extend(p.text for p in splitter.finish() if p.channel == "content")
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return parse_rewrites("".join(content), question)
