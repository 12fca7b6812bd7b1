"""LLM-as-judge: a chosen model grades each answer against the reference with a fixed rubric.

The rubric is fixed (not configurable per run) so that scores from different runs compare. The
judge's reply must be exactly one score line; anything else is counted as unparseable and left out
of the average. Guessing a number from free text would let a chatty judge invent scores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bendi.engines.messages import ChatMessage, SamplingParams
from bendi.engines.protocol import Engine
from bendi.evals.suite import EvalQuestion
from bendi.evals.timed_generation import generate_timed

RUBRIC_VERSION = "bendi-judge-v1"
JUDGE_SYSTEM = (
    "You are a strict grader of answers to questions about regulations. Compare the ANSWER with the "
    "REFERENCE and the KEY POINTS. Score 1 to 5:\n"
    "5 = correct and complete: every key point, nothing contradicting the reference.\n"
    "4 = correct, one minor point missing.\n"
    "3 = partly correct: some key points, or vague.\n"
    "2 = mostly wrong or missing the main point.\n"
    "1 = wrong, contradicts the reference, or off topic.\n"
    "Reply with exactly one line and nothing else: SCORE: <1-5>"
)
# The whole reply, after stripping whitespace, must be this line (ASCII or full-width colon), or the
# bare digit: both are unambiguous. "4/5", "SCORE: 4. Good answer" or "about 4" are not.
_SCORE_LINE = re.compile(r"(?:(?:SCORE|分数)\s*[:：]\s*)?([1-5])", re.IGNORECASE)
SHORT_REPLY_TOKENS = 64
REASONING_REPLY_TOKENS = 2048  # a reasoning judge (R1) thinks before its one line
MIN_SCORE, MAX_SCORE = 1, 5


@dataclass(frozen=True)
class Verdict:
    score: int | None  # None: the judge's reply was not one score line
    raw: str

    @property
    def normalized(self) -> float | None:
        """The score on 0..1, comparable with the other quality metrics."""
        return None if self.score is None else (self.score - MIN_SCORE) / (MAX_SCORE - MIN_SCORE)


def parse_verdict(reply: str) -> Verdict:
    match = _SCORE_LINE.fullmatch(reply.strip())
    return Verdict(int(match.group(1)) if match else None, reply[:500])


def judge_messages(question: EvalQuestion, answer: str) -> list[ChatMessage]:
    points = "\n".join(f"- {p}" for p in question.key_points) or "(none)"
    user = (f"QUESTION:\n{question.question}\n\nREFERENCE:\n{question.reference or '(none)'}\n\n"
            f"KEY POINTS:\n{points}\n\nANSWER:\n{answer or '(empty)'}")  # fmt: skip
    return [ChatMessage("system", JUDGE_SYSTEM), ChatMessage("user", user)]


async def judge_answer(engine: Engine, question: EvalQuestion, answer: str) -> Verdict:
    messages = judge_messages(question, answer)
    # Greedy and short: the verdict is one line; a reasoning judge's chain is split off and not parsed.
    thinks = engine.render_chat(messages).opens_reasoning
    params = SamplingParams(temperature=0.0, max_tokens=REASONING_REPLY_TOKENS if thinks else SHORT_REPLY_TOKENS,
                            seed=0)  # fmt: skip
    generation = await generate_timed(engine, messages, params, client_id="bendi-eval-judge")
    return parse_verdict(generation.content)
