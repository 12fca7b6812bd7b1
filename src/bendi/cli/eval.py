"""`bendi eval SUITE --model A --model B`: score models, presets and knowledge bases on your questions."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bendi.core.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="compare models on your own question set (quality, citations, refusals, speed, memory)",
        description="Run a JSONL question suite against models, presets and knowledge bases and write a "
        "report. SUITE is a .jsonl file, or `demo` for the mining-safety demo suite (see docs/eval.md).",
    )
    parser.add_argument("suite", help="suite file (.jsonl), or `demo`")
    parser.add_argument("--model", "-m", action="append", default=[], metavar="MODEL",
                        help="a model, preset or kb:NAME; repeat to compare (default: the default model)")  # fmt: skip
    parser.add_argument("--kb", metavar="NAME", help="answer every model from this knowledge base")
    parser.add_argument(
        "--judge", metavar="MODEL", help="also grade each answer with this model (fixed rubric)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML report")
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)"
    )
    parser.add_argument("--max-tokens", type=int, default=512, help="longest answer in tokens (default 512)")
    parser.add_argument("--ctx", type=int, dest="context_tokens", help="context window in tokens")
    parser.add_argument("--threads", type=int, help="CPU threads")
    parser.set_defaults(func=handle)


def _progress(label: str, done: int, total: int) -> None:
    # stderr: stdout carries only the report when --json is given.
    end = "\n" if done == total else ""
    if sys.stderr.isatty() or done == total:
        print(f"\r{label}: {done}/{total} questions", end=end, file=sys.stderr, flush=True)


def handle(args: argparse.Namespace) -> int:
    from bendi.access.scope import KbScope
    from bendi.evals.demo_suite import suite_path
    from bendi.evals.report_html import render_html
    from bendi.evals.report_table import print_table
    from bendi.evals.runner import EvalOptions, run_eval
    from bendi.evals.storage import new_report_id, save_report
    from bendi.evals.suite import load_suite
    from bendi.services import build_services

    suite = load_suite(suite_path(args.suite))  # validated before any model loads
    settings = load_settings(context_tokens=args.context_tokens, threads=args.threads,
                             parallel_sequences=1)  # one question at a time: no idle KV slots  # fmt: skip
    services = build_services(settings)
    models = tuple(args.model) or (services.engines.default_model_name(),)
    options = EvalOptions(models=models, knowledge_base=args.kb, judge=args.judge,
                          temperature=args.temperature, max_tokens=args.max_tokens)  # fmt: skip

    async def run() -> dict[str, Any]:
        try:
            # The operator at the terminal reads the data directory directly: every base, as `bendi kb`.
            return await run_eval(services, suite, options, scope=KbScope.everything(), progress=_progress)
        finally:
            await services.aclose()

    report = asyncio.run(run())
    report.update(id=new_report_id(), status="done", error=None)
    stored = save_report(services.paths, report)  # kept, so the web UI lists CLI runs too
    if args.html:
        args.html.write_text(render_html(report), encoding="utf-8")
    if args.json:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        print_table(report)
        print(f"Report {report['id']} saved to {stored}" + (f"; HTML: {args.html}" if args.html else ""))
    return 0
