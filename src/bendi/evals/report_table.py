"""The terminal summary of a report: one row per model, the metrics side by side (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# (metric key, column title, how to show it)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("quality", "quality", "pct"),
    ("char_f1", "char F1", "pct"),
    ("rouge_l", "ROUGE-L", "pct"),
    ("key_point_coverage", "key points", "pct"),
    ("judge_score", "judge", "pct"),
    ("citation_accuracy", "cites right", "pct"),
    ("refusal_rate", "refuses unanswerable", "pct"),
    ("wrong_refusal_rate", "refuses answerable", "pct"),
    ("ttft_s", "TTFT", "seconds"),
    ("tokens_per_s", "tok/s", "rate"),
    ("memory_bytes", "memory", "bytes"),
    ("errors", "errors", "int"),
)


def format_metric(value: Any, kind: str) -> str:
    """How a metric reads in a table; "–" when it was not measured (None)."""
    if value is None:
        return "–"
    if kind == "pct":
        return f"{value * 100:.0f}%"
    if kind == "seconds":
        return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"
    if kind == "rate":
        return f"{value:.1f}"
    if kind == "bytes":
        return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.0f} MiB"
    return str(value)


def build_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"bendi eval: {escape(str(report.get('suite', '')))} "
                        f"({len(report.get('questions', []))} questions)")  # fmt: skip
    table.add_column("model", style="bold")
    models = report.get("models", {})
    # Columns no model measured (e.g. no judge, no unanswerable questions) are left out.
    shown = [c for c in COLUMNS if any(m["metrics"].get(c[0]) is not None for m in models.values())]
    for _, title, _ in shown:
        table.add_column(title, justify="right")
    for label, data in models.items():
        table.add_row(
            escape(label), *(format_metric(data["metrics"].get(key), kind) for key, _, kind in shown)
        )
    return table


def print_table(report: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(build_table(report))
    unparsed = {label: m["metrics"].get("judge_unparsed") for label, m in report.get("models", {}).items()}
    if any(unparsed.values()):
        details = ", ".join(f"{label}: {n}" for label, n in unparsed.items() if n)
        (console or Console()).print(
            f"Judge replies that were not a score (left out of the average): {escape(details)}"
        )
