"""`bendi doctor`: what this machine has, what runs well on it, and what is wrong with it."""

from __future__ import annotations

import argparse
import json
from typing import Any

GB = 10**9
TOP_MODELS = 5


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("doctor", help="what this machine has and which models run well on it")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from bendi.catalog.advisor import problems, rank_variants
    from bendi.core.settings import load_settings
    from bendi.engines.llamacpp.build_info import llama_build
    from bendi.hardware.probe import probe

    settings = load_settings()
    home = settings.home
    profile = probe(disk_path=home if home.exists() else None)
    fitting, _ = rank_variants(profile)
    best = fitting[:TOP_MODELS]
    issues = problems(profile)
    build = llama_build()
    servers = _server_engines(settings)
    if args.json:
        print(
            json.dumps(
                {
                    "hardware": profile.to_dict(),
                    "llama_cpp": {"version": build.version, "paired_q4_1_dot": build.paired_q4_1_dot},
                    "server_engines": {
                        s.kind: {"python": s.python, "version": s.version, "build": s.build or None}
                        for s in servers
                    },
                    "recommended": [p.to_json() for p in best],
                    "problems": issues,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    _print(profile, best, issues, build.describe, servers)
    return 0


def _server_engines(settings: Any) -> list[Any]:
    """vLLM and SGLang as found in BENDI_VLLM_PYTHON / BENDI_SGLANG_PYTHON (optional engines)."""
    from bendi.engines.server_install import engine_python, probe_engine

    return [probe_engine(kind, engine_python(kind, settings)) for kind in ("vllm", "sglang")]


def _print(profile: Any, best: list[Any], issues: list[str], llama_cpp: str, servers: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="This machine 本机", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    cpu = profile.cpu
    numa = f", {profile.numa_nodes} NUMA nodes" if profile.numa_nodes > 1 else ""
    table.add_row(
        "CPU",
        f"{cpu.model} ({cpu.physical_cores} cores / {cpu.logical_cores} threads, {cpu.architecture}{numa})",
    )
    table.add_row("SIMD", " ".join(cpu.flags) or "-")
    table.add_row(
        "RAM",
        f"{profile.ram_total_bytes / GB:.1f} GB total, {profile.ram_available_bytes / GB:.1f} GB available",
    )
    if profile.disk_free_bytes is not None:
        table.add_row("Disk free", f"{profile.disk_free_bytes / GB:.1f} GB")
    for i, gpu in enumerate(profile.gpus):
        driver = f", driver {gpu.driver_version}" if gpu.driver_version else ""
        table.add_row(
            f"GPU {i}",
            f"{gpu.name}: {gpu.memory_total_bytes / GB:.1f} GB "
            f"({gpu.memory_free_bytes / GB:.1f} GB free){driver}",
        )
    if not profile.gpus:
        table.add_row("GPU", "none")
    table.add_row("llama.cpp", llama_cpp)
    for server in servers:
        label = "vLLM" if server.kind == "vllm" else "SGLang"
        table.add_row(label, server.describe() + ("" if server.installed else " (optional)"))
    console.print(table)
    models = Table(title="Runs well here 推荐模型", title_justify="left")
    for column in ("model", "memory", "decode tok/s", "placement"):
        models.add_column(column)
    for plan in best:
        models.add_row(
            plan.model, f"{plan.total_bytes / GB:.1f} GB", f"{plan.decode_tokens_per_s:.1f}", plan.placement
        )
    console.print(models)
    for issue in issues:
        console.print(f"[yellow]![/] {issue}")
    console.print("[dim]GB = 10^9 bytes. `bendi plan` ranks every model; `bendi plan MODEL` explains one.[/]")
