"""Run a suite against several targets through bendi's own Services: the CLI and the API share this.

In process, through the same engine pool and knowledge bases the server uses, so `bendi eval` needs
no running server and a run started from the API sees exactly the models that server serves.
Questions run one at a time: concurrent questions would share the engine and distort TTFT and tok/s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bendi.access.scope import KbScope
from bendi.core.errors import BendiError, UserInputError
from bendi.engines.messages import SamplingParams
from bendi.evals.judge import RUBRIC_VERSION, judge_answer
from bendi.evals.scoring import score_answer
from bendi.evals.suite import EvalQuestion, Suite
from bendi.evals.summary import summarize
from bendi.evals.targets import Target, make_target
from bendi.services import Services

MAX_MODELS = 12
Progress = Callable[[str, int, int], None]  # (model label, questions done, questions in all)


@dataclass(frozen=True)
class EvalOptions:
    models: tuple[str, ...]
    knowledge_base: str | None = None
    judge: str | None = None
    # Greedy by default: two runs of the same suite give the same answers, so a difference between
    # models is the models', not the dice's.
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int = 0

    def validate(self) -> None:
        if not self.models:
            raise UserInputError("Name at least one model to evaluate: --model NAME (repeat it to compare).")
        if len(self.models) > MAX_MODELS:
            raise UserInputError(f"Evaluate at most {MAX_MODELS} models in one run.")
        if len(set(self.models)) != len(self.models):
            raise UserInputError("A model is named twice; each --model is one column of the report.")
        if not 0.0 <= self.temperature <= 2.0:
            raise UserInputError("The temperature must be between 0 and 2.")
        if not 1 <= self.max_tokens <= 32768:
            raise UserInputError("--max-tokens must be between 1 and 32768.")


def check_targets(services: Services, targets: Sequence[Target], judge: str | None, scope: KbScope) -> None:
    """Fail before the first question when a model or knowledge base does not exist."""
    pool = services.engines
    upstream = set(pool.upstream_models())
    for name in [t.model for t in targets if t.model] + ([judge] if judge else []):
        if name not in upstream:
            pool.resolve(name)  # raises ModelNotFoundError with what to do
    for kb in {t.knowledge_base for t in targets if t.knowledge_base}:
        services.knowledge.get(kb, scope)


def _info_json(target: Target) -> dict[str, Any] | None:
    return asdict(target.info) if target.info else None


async def _run_question(services: Services, scope: KbScope, target: Target, question: EvalQuestion,
                        params: SamplingParams, judge: str | None) -> dict[str, Any]:  # fmt: skip
    row: dict[str, Any] = {"id": question.id, "answerable": question.answerable}
    try:
        answer = await target.answer(services, scope, question.question, params)
    except BendiError as exc:  # one failing question (e.g. a prompt over the window) is reported, not fatal
        return {**row, "answer": "", "error": exc.message, "scores": {}}
    generation = answer.generation
    grounded = target.knowledge_base is not None
    row.update(
        answer=answer.text,
        reasoning=generation.reasoning if generation else "",
        sources=[s.to_json() for s in answer.sources],
        refused_by_kb=answer.refused_by_kb,
        ttft_s=generation.ttft_s if generation else None,
        total_s=generation.total_s if generation else 0.0,
        completion_tokens=generation.completion_tokens if generation else 0,
        tokens_per_s=generation.decode_tokens_per_s if generation else None,
        scores=score_answer(question, answer, grounded),
        error=None,
    )
    if judge and question.answerable:
        engine = await services.engines.acquire(judge)
        verdict = await judge_answer(engine, question, answer.text)
        row["judge"] = {"score": verdict.score, "normalized": verdict.normalized, "raw": verdict.raw}
    return row


async def run_eval(services: Services, suite: Suite, options: EvalOptions, *, scope: KbScope,
                   progress: Progress | None = None) -> dict[str, Any]:  # fmt: skip
    """The report as a JSON-able dict: settings, questions, and per model its metrics and answers."""
    options.validate()
    targets = [make_target(services, label, options.knowledge_base) for label in options.models]
    check_targets(services, targets, options.judge, scope)
    params = SamplingParams(temperature=options.temperature, max_tokens=options.max_tokens, seed=options.seed)
    started = time.time()
    models: dict[str, Any] = {}
    total = len(suite.questions)
    for target in targets:
        rows: list[dict[str, Any]] = []
        for done, question in enumerate(suite.questions):
            if progress:
                progress(target.label, done, total)
            rows.append(await _run_question(services, scope, target, question, params, options.judge))
        if progress:
            progress(target.label, total, total)
        info = _info_json(target)
        models[target.label] = {
            "model": target.model or (info or {}).get("model_name"),
            "knowledge_base": target.knowledge_base,
            "engine": info,
            "metrics": summarize(rows, info),
            "answers": rows,
        }
    return {
        "suite": suite.name,
        "started_at": started,
        "finished_at": time.time(),
        "settings": {
            "temperature": options.temperature,
            "max_tokens": options.max_tokens,
            "seed": options.seed,
            "knowledge_base": options.knowledge_base,
            "judge": options.judge,
            "judge_rubric": RUBRIC_VERSION if options.judge else None,
        },  # fmt: skip
        "questions": [q.to_json() for q in suite.questions],
        "models": models,
    }
