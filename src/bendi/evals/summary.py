"""Per-model metrics from the per-question results: the numbers the table, JSON and chart show.

A metric that applied to no question is None ("not measured"), never 0, so a suite without
unanswerable questions does not report a refusal rate of 0%.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from bendi.evals.metrics import mean


def _share(flags: list[bool | None]) -> float | None:
    present = [f for f in flags if f is not None]
    return sum(present) / len(present) if present else None


def headline_quality(metrics: dict[str, Any]) -> float | None:
    """One 0..1 number for the chart: the judge when there is one, else key points, else char F1.

    The judge reads meaning; key points check the facts the suite author cared about; char F1 only
    measures overlap with one wording. The best signal the run has is the one plotted.
    """
    for key in ("judge_score", "key_point_coverage", "char_f1"):
        if metrics.get(key) is not None:
            return float(metrics[key])
    return None


def summarize(answers: list[dict[str, Any]], info: dict[str, Any] | None) -> dict[str, Any]:
    """Aggregate one model's answers (each with "answerable", "scores", timings, "error")."""
    ok = [a for a in answers if not a.get("error")]
    answerable = [a for a in ok if a["answerable"]]
    unanswerable = [a for a in ok if not a["answerable"]]
    ttfts = [a["ttft_s"] for a in ok if a.get("ttft_s") is not None]
    speeds = [a["tokens_per_s"] for a in ok if a.get("tokens_per_s") is not None]
    verdicts = [a["judge"] for a in answerable if a.get("judge") is not None]
    metrics: dict[str, Any] = {
        "questions": len(answers),
        "errors": len(answers) - len(ok),
        "char_f1": mean([a["scores"].get("char_f1") for a in answerable]),
        "rouge_l": mean([a["scores"].get("rouge_l") for a in answerable]),
        "key_point_coverage": mean([a["scores"].get("key_point_coverage") for a in answerable]),
        "judge_score": mean([v["normalized"] for v in verdicts]),
        "judge_unparsed": sum(v["score"] is None for v in verdicts) if verdicts else None,
        "citation_accuracy": _share([a["scores"].get("citation_correct") for a in answerable]),
        "retrieval_hit_rate": _share([a["scores"].get("retrieval_hit") for a in answerable]),
        "refusal_rate": _share([a["scores"]["refused"] for a in unanswerable]),
        "wrong_refusal_rate": _share([a["scores"]["refused"] for a in answerable]),
        "ttft_s": median(ttfts) if ttfts else None,
        "tokens_per_s": mean(speeds),
        "memory_bytes": (info or {}).get("memory_bytes") or (info or {}).get("file_bytes") or None,
    }
    metrics["quality"] = headline_quality(metrics)
    return metrics
