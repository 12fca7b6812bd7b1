"""`bendi plan`: which DeepSeek model fits a machine (this one or a described one), and what a model needs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bendi.core.errors import UserInputError

GB = 10**9


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="which model fits this (or another) machine, how fast, and with which engine",
        description="Without MODEL: rank the catalog for the machine. With MODEL: one plan. "
        'Hardware flags describe another machine, e.g. --gpu "RTX 4090x2" --ram 64.',
    )
    parser.add_argument(
        "model", nargs="?", help="e.g. deepseek-r1:7b, deepseek-r1:70b-q8_0, deepseek-r1:671b"
    )
    parser.add_argument("--quant", help="quantization, e.g. Q4_K_M, Q8_0, UD-IQ1_S, FP8")
    parser.add_argument(
        "--ctx", type=int, dest="context_tokens", help="context window in tokens (default 4096)"
    )
    parser.add_argument(
        "--gpu", help='GPU model and count: "RTX 4090", "4090x2", "A100-80GB", "8xH20", "M2 Ultra"'
    )
    parser.add_argument("--ram", type=float, dest="ram_gb", help="system RAM in GB (decimal)")
    parser.add_argument(
        "--ram-bandwidth", type=float, dest="ram_bandwidth_gbps", help="RAM bandwidth in GB/s"
    )
    parser.add_argument(
        "--nodes", type=int, default=1, help="identical machines joined by a network (default 1)"
    )
    parser.add_argument(
        "--sockets",
        type=int,
        help="CPU sockets (NUMA nodes) per machine; default: this machine's, from /sys/devices/system/node",
    )
    parser.add_argument("--engine", choices=("llama.cpp", "vllm", "sglang"), help="force this engine")
    parser.add_argument(
        "--json", action="store_true", help="print JSON (a stable contract) instead of tables"
    )
    parser.add_argument(
        "--hardware-options",
        action="store_true",
        help="list hardware configurations that run MODEL, with expected speed",
    )
    parser.add_argument("--all", action="store_true", help="also list the rejected models with the reason")
    parser.set_defaults(func=handle)


def _machine(args: argparse.Namespace) -> Any:
    from bendi.catalog.machines import describe_machine
    from bendi.hardware.probe import probe

    detected = probe()
    described = (args.gpu, args.ram_gb, args.ram_bandwidth_gbps, args.sockets)
    if all(v is None for v in described) and args.nodes == 1:
        return detected
    # A GPU given without --ram keeps this machine's RAM; --ram alone keeps this machine's GPUs.
    return describe_machine(
        args.gpu, args.ram_gb, args.ram_bandwidth_gbps, args.nodes, base=detected, sockets=args.sockets
    )


def _variant(args: argparse.Namespace) -> Any:
    from bendi.catalog.catalog import load_catalog

    name = args.model
    if args.quant:
        name = (
            f"{name}-{args.quant}"
            if ":" in name
            else f"{name}:{load_catalog().resolve(name).tag}-{args.quant}"
        )
    return load_catalog().resolve(name)


def handle(args: argparse.Namespace) -> int:
    from bendi.catalog.advisor import hardware_options, rank_variants
    from bendi.catalog.catalog import load_catalog
    from bendi.catalog.draft_pairing import advise_draft
    from bendi.catalog.engine_choice import plan_serving
    from bendi.engines.plan_command import launch_command

    if args.context_tokens is not None and args.context_tokens < 1:
        raise UserInputError("--ctx must be a positive number of tokens, e.g. --ctx 8192.")
    if args.hardware_options:
        if not args.model:
            raise UserInputError(
                "--hardware-options needs a MODEL, e.g. bendi plan deepseek-r1:671b --hardware-options"
            )
        options = hardware_options(_variant(args), args.context_tokens)
        if args.json:
            print(json.dumps({"model": args.model, "options": [p.to_json() for p in options]}, indent=2))
        else:
            _print_options(args.model, options)
        return 0
    machine = _machine(args)
    if args.model:
        quant_given = bool(args.quant) or load_catalog().names_quant(args.model)
        plan = plan_serving(_variant(args), machine, args.context_tokens, args.engine, quant_given)
        launch = launch_command(plan)  # engines/plan_command.py
        # A small model of the same tokenizer that speeds llama.cpp up (catalog/draft_pairing.py).
        draft = advise_draft(plan)
        # What `bendi serve` would do here with what is installed (only for this machine, not a described one).
        here = _installed_here(args) if machine.label == "this machine" else None
        if args.json:
            found = {**plan.to_json(), **launch, "draft_model": draft.to_json() if draft else None}
            print(json.dumps({**found, "installed": here}, indent=2, ensure_ascii=False))
        else:
            _print_plan(plan, launch, draft)
            if here is not None:
                _console().print(f"Installed here: {_escape(here['summary'])}")
        return 0 if plan.fits else 2
    fitting, rejected = rank_variants(machine, args.context_tokens, args.engine)
    if args.json:
        print(
            json.dumps(
                {
                    "machine": machine.label,
                    "plans": [p.to_json() for p in fitting],
                    "rejected": [p.to_json() for p in rejected],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        _print_ranking(machine.label, fitting, rejected if args.all else [])
    return 0


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _installed_here(args: argparse.Namespace) -> dict[str, Any] | None:
    """engines/engine_select's choice among the installed forms of MODEL (GGUF, HF) on this machine,
    with its reason; None when no form of it is installed."""
    from bendi.core.errors import BendiError, ModelNotFoundError
    from bendi.core.paths import DataPaths
    from bendi.core.settings import load_settings
    from bendi.engines.engine_select import select_engine
    from bendi.store.resolve import resolve_model

    settings = load_settings()
    paths = DataPaths(settings.home)
    try:
        decision = select_engine(args.model, args.engine, lambda n: resolve_model(paths, n), settings, paths)
    except ModelNotFoundError:
        return None
    except BendiError as exc:
        return {"model": None, "engine": None, "reason": exc.message, "summary": exc.message}
    name = decision.model.name
    return {
        "model": name,
        "engine": decision.kind,
        "reason": decision.reason,
        "serve_command": ["bendi", "serve", "--engine", decision.kind, "--model", name],
        "summary": f"bendi serve would run {name} on {decision.kind}. {decision.reason}",
    }


def _console() -> Any:
    """Tables stay one row per model when piped (rich would wrap them at 80 columns)."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def _gb(n: float) -> str:
    return f"{n / GB:,.1f} GB"


def _speed(tps: float) -> str:
    return f"{tps:,.1f}" if tps else "-"


def _print_plan(plan: Any, launch: dict[str, Any], draft: Any = None) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    table = Table(title=f"{plan.model} on {plan.machine}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    verdict = "[green]fits 可以运行[/]" if plan.fits else "[red]does not fit 放不下[/]"
    rows = [
        ("verdict", verdict),
        ("engine", f"{plan.engine} with {plan.quant} ({plan.format})"),
        ("placement", escape(plan.placement)),
        ("context", f"{plan.context_tokens:,} tokens (largest that fits: {plan.max_context_tokens:,})"),
        ("weights", _gb(plan.weights_bytes)),
        ("KV cache", _gb(plan.kv_cache_bytes)),
        ("total memory", _gb(plan.total_bytes)),
        ("decode", f"{_speed(plan.decode_tokens_per_s)} tok/s"),
        ("prefill", f"{_speed(plan.prefill_tokens_per_s)} tok/s"),
    ]
    if plan.sockets > 1:
        rows.append(("CPU sockets", f"{plan.sockets} (NUMA: {plan.numa})"))
    for device in plan.devices:
        cap = f" of {_gb(device.capacity_bytes)}" if device.capacity_bytes else ""
        rows.append((f"  {device.device}", f"{_gb(device.total_bytes)}{cap}"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    for reason in plan.engine_reasons:
        console.print(f"Why {plan.engine}: {escape(reason)}")
    console.print(escape(plan.reason))
    if plan.speed_terms:
        total = sum(t.seconds for t in plan.speed_terms)
        console.print(escape(plan.speed_explanation()))
        for term in sorted(plan.speed_terms, key=lambda t: -t.seconds):
            console.print(
                f"  {term.name:<12} {term.seconds * 1e3:7.1f} ms {term.seconds / total:4.0%}  {escape(term.detail)}"
            )
    if plan.fits:
        console.print(f"Command: {escape(launch['command_line'])}")
        for extra in (*launch["worker_node_commands"], *launch["command_notes"]):
            console.print(f"  {escape(extra)}")
    if draft is not None:
        _print_draft(console, plan, draft)
    console.print("[dim]GB = 10^9 bytes. Speeds are single-user estimates (see docs/advisor.md).[/]")


def _print_draft(console: Any, plan: Any, draft: Any) -> None:
    """The "Draft model" section: which one, its memory, the expected speed-up and the command; one sentence
    when there is none or it is not recommended."""
    from rich.markup import escape

    if not draft.recommended:
        verdict = "not recommended" if draft.draft is not None else "none"
        console.print(f"[bold]Draft model:[/] {verdict}. {escape(draft.reason)}")
        return
    memory, speed = draft.memory, draft.speedup
    buffers = memory.extra_bytes - memory.weights_bytes - memory.kv_cache_bytes
    main = memory.main
    k = speed.proposed_tokens
    console.print("[bold]Draft model[/] (speculative decoding: a small model guesses, the big one checks)")
    console.print(f"  {escape(draft.reason)}")
    console.print(
        f"  extra memory  {_gb(memory.extra_bytes)}: {_gb(memory.weights_bytes)} of weights, "
        f"{_gb(memory.kv_cache_bytes)} of KV cache (its memory of the conversation), {_gb(buffers)} of working space;"
    )
    console.print(
        f"                fits in the {_gb(main.free_bytes or 0)} of {main.where} the model leaves free"
    )
    console.print(
        f"  expected      {speed.low:.1f}x to {speed.high:.1f}x the plain speed (about "
        f"{plan.decode_tokens_per_s * speed.low:,.1f} to {plan.decode_tokens_per_s * speed.high:,.1f} tok/s "
        f"instead of {plan.decode_tokens_per_s:,.1f}), guessing {k} token{'s' if k > 1 else ''} ahead,"
    )
    console.print(
        "                if 50% to 70% of the guesses are right: an assumption, not measured (docs/advisor.md)"
    )
    console.print(f"  command       bendi pull {escape(draft.draft_name)}   (once, to download it)")
    console.print(f"                {escape(' '.join(draft.command))}")


def _print_ranking(label: str, fitting: list[Any], rejected: list[Any]) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"Models for {label} (best first)", title_justify="left")
    for column in ("model", "engine", "memory", "max context", "decode tok/s", "placement"):
        table.add_column(
            column,
            justify="right" if column in ("memory", "max context", "decode tok/s") else "left",
            no_wrap=column == "model",
        )
    for plan in fitting:
        table.add_row(
            plan.model,
            plan.engine,
            _gb(plan.total_bytes),
            f"{plan.max_context_tokens:,}",
            _speed(plan.decode_tokens_per_s),
            plan.placement,
        )
    console.print(table)
    if rejected:
        console.print("[bold]Does not fit:[/]")
        for plan in rejected:
            console.print(f"  {plan.model}: {plan.reason}")
    console.print(
        "[dim]GB = 10^9 bytes. `bendi plan MODEL` explains one model; --all lists the rejected ones.[/]"
    )


def _print_options(model: str, options: list[Any]) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"Hardware that runs {model}", title_justify="left")
    for column in ("machine", "variant", "engine", "memory", "decode tok/s", "placement"):
        table.add_column(column, no_wrap=column == "variant")
    for plan in options:
        table.add_row(
            plan.machine,
            plan.model,
            plan.engine,
            _gb(plan.total_bytes),
            _speed(plan.decode_tokens_per_s),
            plan.placement,
        )
    console.print(table)
    console.print("[dim]Single-user decode estimates; GB = 10^9 bytes.[/]")
