"""`bendi tune BASE --data FILE --name NAME`: LoRA fine-tuning whose result is served at once as the
preset BASE+NAME (docs/tune.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bendi.core.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="teach a model your own answers with LoRA; the result is the preset BASE+NAME",
        description='LoRA supervised fine-tuning on a JSONL file of chats ({"messages": [...]}) or '
        "question/answer pairs. Needs the tuning environment (bash scripts/install_tune.sh). Ctrl-C saves "
        "a checkpoint; run the same command with --resume to continue.",
    )
    parser.add_argument("base", help="the model to tune (an installed or bundled model)")
    parser.add_argument("--data", required=True, type=Path, help="training data (.jsonl)")
    parser.add_argument(
        "--eval", dest="eval_data", type=Path, help="held-out data (.jsonl): eval loss is reported"
    )
    parser.add_argument(
        "--name", required=True, help="what the tuning taught, e.g. mining: the preset is BASE+NAME"
    )
    parser.add_argument("--epochs", type=int, default=3, help="passes over the data (default 3)")
    parser.add_argument(
        "--max-steps", type=int, default=0, help="stop after this many steps (default: epochs)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its checkpoint"
    )
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (default 16)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per step (default 8)")
    parser.add_argument(
        "--max-length", type=int, default=256, help="tokens per example, longer are cut (default 256)"
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for training (default: all)")
    parser.add_argument("--json", action="store_true", help="print the run's metrics as JSON on stdout")
    parser.set_defaults(func=handle)

    data = subparsers.add_parser(
        "tune-data",
        help="write tuning pairs from a knowledge base: a model asks, the base's passages answer",
        description="For passages spread over a knowledge base, MODEL writes the question each passage "
        "answers; the answer is the passage itself with its citation. The JSONL file is ready for "
        "`bendi tune --data` (read it before training on it).",
    )
    data.add_argument("knowledge_base", help="the knowledge base to draw passages from")
    data.add_argument("--model", required=True, help="the model that writes the questions")
    data.add_argument("--out", required=True, type=Path, help="the JSONL file to write")
    data.add_argument("--count", type=int, default=100, help="passages to use (default 100)")
    data.set_defaults(func=handle_data)


def handle_data(args: argparse.Namespace) -> int:
    import asyncio

    from bendi.access.scope import KbScope
    from bendi.services import build_services
    from bendi.tune.kb_pairs import write_pairs

    services = build_services(load_settings(parallel_sequences=1))

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty() or done == total:
            print(
                f"\rpassages: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True
            )

    async def run() -> list[dict[str, Any]]:
        try:  # the operator at the terminal reads the data directory directly, as `bendi kb` does
            return await write_pairs(services, args.knowledge_base, args.model, args.count,
                                     KbScope.everything(), progress)  # fmt: skip
        finally:
            await services.aclose()

    pairs = asyncio.run(run())
    args.out.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    print(f"Wrote {len(pairs)} question/answer pairs to {args.out}.")
    return 0


class Progress:
    """One line per event on stderr (redrawn in place on a terminal), so stdout stays for --json."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.eval_loss: float | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "prepared":
            self._line(f"Tuning {event['preset']}: {event['train_examples']} examples, "
                       f"{event['eval_examples']} held out; memory {event['memory']}", final=True)  # fmt: skip
        elif kind == "status":
            self._line(str(event.get("message")), final=True)
        elif kind == "start" and event.get("resumed"):
            self._line(f"Resuming at step {event['step']} of {event['total']}", final=True)
        elif kind == "eval":
            self.eval_loss = float(event["eval_loss"])
            self._line(f"step {event['step']}/{event['total']}  eval loss {self.eval_loss:.3f}", final=True)
        elif kind == "step":
            minutes, seconds = divmod(int(event["eta_s"]), 60)
            text = (f"step {event['step']}/{event['total']}  loss {event['loss']:.3f}  "
                    f"{event['tokens_per_s']:.0f} tok/s  {minutes}m{seconds:02d}s left")  # fmt: skip
            self._line(text, final=not self.tty and event["step"] % 10 == 0)
        elif kind == "interrupted":
            self._line(f"Interrupted at step {event['step']}: checkpoint saved.", final=True)

    def _line(self, text: str, *, final: bool) -> None:
        if self.tty:
            print(f"\r\x1b[2K{text}", end="\n" if final else "", file=sys.stderr, flush=True)
        elif final:
            print(text, file=sys.stderr, flush=True)


def handle(args: argparse.Namespace) -> int:
    from bendi.core.paths import DataPaths
    from bendi.tune.run import TuneInterrupted, TuneOptions, run_tune

    settings = load_settings()
    paths = DataPaths(settings.home).ensure()
    options = TuneOptions(
        base=args.base, data=args.data, name=args.name, eval_data=args.eval_data, epochs=args.epochs,
        max_steps=args.max_steps, resume=args.resume, rank=args.rank, alpha=2 * args.rank,
        learning_rate=args.lr, batch_size=args.batch_size, max_length=args.max_length, threads=args.threads,
    )  # fmt: skip
    try:
        result = run_tune(settings, paths, options, Progress())
    except TuneInterrupted as stopped:
        again = " ".join(a for a in sys.argv[1:] if a != "--resume")
        print(f"{stopped.message} Continue with: bendi {again} --resume", file=sys.stderr)
        return 130
    if args.json:
        json.dump(result.metrics, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return 0
    metrics = result.metrics
    losses = metrics["eval_loss"]
    if losses:
        print(f"Eval loss {losses[0][1]:.3f} -> {losses[-1][1]:.3f} over {metrics['steps']} steps.")
    print(f"Created preset {result.preset} (adapter {result.adapter}).")
    print(f"Try it: bendi run {result.preset}    compare: bendi eval SUITE.jsonl --model {metrics['base']} "
          f"--model {result.preset}")  # fmt: skip
    return 0
