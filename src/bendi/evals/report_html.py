"""The HTML report: one self-contained file (no scripts, fonts or images from anywhere) that answers
"which size do we need?" with a chart of quality against speed, memory as the marker size.

Every string that came from a suite or a model goes through html.escape: model answers are
untrusted text, and the report is opened in a browser (and served by the API).
"""

from __future__ import annotations

import math
import time
from html import escape
from typing import Any

from bendi.evals.report_table import COLUMNS, format_metric

# The page carries its own CSP too, so a report saved to disk and opened later is as locked down.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777")
CHART_W, CHART_H, PAD = 640, 360, 56
WITHIN_BEST = 0.05  # "good enough": within 5 points of the best quality

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","Microsoft YaHei",sans-serif;
margin:2rem;color:#111;max-width:1200px}
table{border-collapse:collapse;margin:1rem 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
td.num{text-align:right;white-space:nowrap}
.answer{white-space:pre-wrap;max-width:28rem}
.muted{color:#666}.ok{color:#15803d}.bad{color:#b91c1c}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.3em}
"""


def _color(position: int) -> str:
    return PALETTE[position % len(PALETTE)]


def recommendation(models: dict[str, Any]) -> str | None:
    """The least memory among the models within WITHIN_BEST of the best quality: the size to buy."""
    scored = [(label, m["metrics"]) for label, m in models.items() if m["metrics"].get("quality") is not None]
    if not scored:
        return None
    best = max(metrics["quality"] for _, metrics in scored)
    good = [(label, metrics) for label, metrics in scored if metrics["quality"] >= best - WITHIN_BEST]
    label, metrics = min(good, key=lambda item: item[1].get("memory_bytes") or math.inf)
    return (f"{label} is the smallest model within {WITHIN_BEST * 100:.0f} points of the best quality "
            f"({format_metric(metrics['quality'], 'pct')} vs {format_metric(best, 'pct')}; "
            f"memory {format_metric(metrics.get('memory_bytes'), 'bytes')}).")  # fmt: skip


def chart_svg(models: dict[str, Any]) -> str:
    """Quality (y, 0-100%) against decode speed (x, tok/s); circle area grows with memory."""
    points = [(i, label, m["metrics"]) for i, (label, m) in enumerate(models.items())
              if m["metrics"].get("quality") is not None]  # fmt: skip
    max_speed = max([p[2].get("tokens_per_s") or 0 for p in points] + [1.0]) * 1.1
    max_memory = max([p[2].get("memory_bytes") or 0 for p in points] + [1])
    inner_w, inner_h = CHART_W - 2 * PAD, CHART_H - 2 * PAD
    parts = [f'<svg width="{CHART_W}" height="{CHART_H}" viewBox="0 0 {CHART_W} {CHART_H}" role="img" '
             f'aria-label="quality against speed">',
             f'<rect x="{PAD}" y="{PAD}" width="{inner_w}" height="{inner_h}" fill="#fafafa" stroke="#999"/>']  # fmt: skip
    for tick in range(0, 101, 25):
        y = PAD + inner_h * (1 - tick / 100)
        parts.append(f'<line x1="{PAD}" x2="{PAD + inner_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
                     f'<text x="{PAD - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{tick}%</text>')  # fmt: skip
    for step in range(5):
        speed = max_speed * step / 4
        x = PAD + inner_w * step / 4
        parts.append(
            f'<text x="{x:.1f}" y="{PAD + inner_h + 16}" font-size="11" text-anchor="middle">{speed:.0f}</text>'
        )
    parts.append(f'<text x="{PAD + inner_w / 2}" y="{CHART_H - 10}" font-size="12" text-anchor="middle">'
                 f'speed (tokens/s, faster →)</text>'
                 f'<text x="14" y="{PAD + inner_h / 2}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {PAD + inner_h / 2})">quality (better ↑)</text>')  # fmt: skip
    for position, label, metrics in points:
        x = PAD + inner_w * (metrics.get("tokens_per_s") or 0) / max_speed
        y = PAD + inner_h * (1 - metrics["quality"])
        memory = metrics.get("memory_bytes") or 0
        radius = 6 + 22 * math.sqrt(memory / max_memory)  # area, not radius, tracks memory
        title = escape(f"{label}: quality {format_metric(metrics['quality'], 'pct')}, "
                       f"{format_metric(metrics.get('tokens_per_s'), 'rate')} tok/s, "
                       f"{format_metric(memory or None, 'bytes')}")  # fmt: skip
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{_color(position)}" '
                     f'fill-opacity="0.55" stroke="{_color(position)}"><title>{title}</title></circle>'
                     f'<text x="{x + radius + 4:.1f}" y="{y + 4:.1f}" font-size="12">{escape(label)}</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _summary_table(models: dict[str, Any]) -> str:
    head = "".join(f"<th>{escape(title)}</th>" for _, title, _ in COLUMNS)
    rows = []
    for position, (label, data) in enumerate(models.items()):
        engine = data.get("engine") or {}
        cells = "".join(f'<td class="num">{escape(format_metric(data["metrics"].get(key), kind))}</td>'
                        for key, _, kind in COLUMNS)  # fmt: skip
        detail = " · ".join(escape(str(v)) for v in (engine.get("quantization"), engine.get("engine")) if v)
        rows.append(f'<tr><td><span class="swatch" style="background:{_color(position)}"></span>{escape(label)}'
                    f'<div class="muted">{detail}</div></td>{cells}</tr>')  # fmt: skip
    return f"<table><thead><tr><th>model</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell_for(row: dict[str, Any] | None) -> str:
    if row is None:
        return "<td></td>"
    if row.get("error"):
        return f'<td class="bad">error: {escape(row["error"])}</td>'
    scores = row.get("scores", {})
    facts = []
    if "char_f1" in scores:
        facts.append(f"F1 {format_metric(scores.get('char_f1'), 'pct')}")
        facts.append(f"key points {format_metric(scores.get('key_point_coverage'), 'pct')}")
    if scores.get("citation_correct") is not None:
        facts.append("cites right" if scores["citation_correct"] else "cites wrong/none")
    if "correct_refusal" in scores:
        facts.append("refused ✓" if scores["correct_refusal"] else "answered ✗")
    elif scores.get("refused"):
        facts.append("refused ✗")
    if row.get("judge"):
        facts.append(f"judge {row['judge']['score'] if row['judge']['score'] is not None else 'unparsed'}")
    return (f'<td><div class="answer">{escape(row.get("answer", ""))}</div>'
            f'<div class="muted">{escape(" · ".join(facts))}</div></td>')  # fmt: skip


def _questions_table(report: dict[str, Any]) -> str:
    models = report.get("models", {})
    by_model = {label: {row["id"]: row for row in data.get("answers", [])} for label, data in models.items()}
    head = "".join(f"<th>{escape(label)}</th>" for label in models)
    rows = []
    for question in report.get("questions", []):
        expected = question.get("reference") or "; ".join(question.get("key_points") or [])
        if not question.get("answerable", True):
            expected = "(not answerable: should refuse)"
        source = " ".join(v for v in (question.get("source"), question.get("article")) if v)
        cells = "".join(_cell_for(by_model[label].get(question["id"])) for label in models)
        rows.append(f'<tr><td>{escape(question["question"])}<div class="muted">{escape(source)}</div></td>'
                    f'<td class="answer">{escape(expected)}</td>{cells}</tr>')  # fmt: skip
    return (
        f"<table><thead><tr><th>question</th><th>expected</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_html(report: dict[str, Any]) -> str:
    models = report.get("models", {})
    settings = report.get("settings", {})
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report.get("started_at") or 0))
    advice = recommendation(models)
    title = f"bendi eval: {report.get('suite', '')}"
    setting_text = ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="referrer" content="no-referrer"><title>{escape(title)}</title><style>{STYLE}</style></head>'
        f"<body><h1>{escape(title)}</h1>"
        f'<p class="muted">{escape(when)} · {len(report.get("questions", []))} questions · {escape(setting_text)}</p>'
        + (f'<p class="ok"><strong>{escape(advice)}</strong></p>' if advice else "")
        + f"<h2>Quality against speed</h2>{chart_svg(models)}"
        f"<h2>Models</h2>{_summary_table(models)}"
        f"<h2>Questions</h2>{_questions_table(report)}</body></html>\n"
    )
