"""`bendi pull NAME`: download a model with a progress bar; Ctrl-C leaves a resumable partial."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from bendi.cli.models import human_bytes, human_duration
from bendi.core.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pull",
        help="download a model (catalog name, hf:OWNER/REPO/FILE.gguf, hf:OWNER/REPO or modelscope:...)",
        description="Download a model, resuming an interrupted download, and verify its SHA-256.",
    )
    parser.add_argument("model", help="e.g. deepseek-r1:7b, deepseek-r1:7b-q8_0, hf:OWNER/REPO/FILE.gguf")
    parser.add_argument(
        "--source", default="auto", choices=("auto", "huggingface", "modelscope", "mirror"),
        help="where to download from (auto: settings.source_order, falling back on failure)",
    )  # fmt: skip
    parser.add_argument("--quant", help="quantization, e.g. q4_K_M or q8_0 (catalog names only)")
    parser.add_argument("--name", help="install under this local name instead of the default")
    parser.add_argument(
        "--format", choices=("gguf", "hf"), dest="model_format",
        help="hf: the Hugging Face-format checkpoint (config, tokenizer, safetensors) for vLLM/SGLang; "
        "catalog names pick their BF16 (distills) or FP8 (671B) repository; NAME-awq picks the AWQ one",
    )  # fmt: skip
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn

    from bendi.store.store import PullProgress, Store

    # A file-size limit (ulimit -f) must become an error we can report, not a SIGXFSZ core dump.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    store = Store(load_settings())
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[amount]}"),
        TextColumn("{task.fields[speed]}"),
        TextColumn("{task.fields[eta]}"),
        console=console,
        transient=False,
    )
    task: TaskID | None = None

    def show(p: PullProgress) -> None:
        nonlocal task
        if p.status != "downloading":
            if p.status == "verifying" and task is not None:
                bar.update(task, description="verifying")
            return
        total = p.total_bytes or 0
        amount = (
            f"{human_bytes(p.completed_bytes)} / {human_bytes(total)}"
            if total
            else human_bytes(p.completed_bytes)
        )
        speed = f"{human_bytes(int(p.speed_bytes_per_s))}/s" if p.speed_bytes_per_s else ""
        eta = f"ETA {human_duration(p.eta_s)}" if p.eta_s is not None else ""
        if task is None:
            bar.start()  # only once bytes flow: errors before that print cleanly, without a bar
            task = bar.add_task(
                f"pulling {p.model}", total=total or None, amount=amount, speed=speed, eta=eta
            )
        bar.update(
            task, completed=p.completed_bytes, total=total or None, amount=amount, speed=speed, eta=eta
        )

    try:
        installed = store.pull(
            args.model, source=args.source, quant=args.quant, name=args.name, progress=show,
            model_format=args.model_format,
        )  # fmt: skip
    except KeyboardInterrupt:
        if task is not None:
            bar.stop()
        print(
            "bendi: pull stopped. The downloaded part is kept; run the same `bendi pull` again to resume.",
            file=sys.stderr,
        )
        return 130
    finally:
        if task is not None:  # stopping a bar that never started would print a stray newline
            bar.stop()
    manifest = installed.manifest
    check = "verified against the publisher's SHA-256" if manifest.verified else "no published hash to check"
    print(f"{installed.name}: {human_bytes(installed.size_bytes)} in {len(manifest.files)} file(s), {check}.")
    for note in installed.notes:
        print(f"  not fetched: {note}")
    print(f"Run it with: bendi run {installed.name}")
    return 0
