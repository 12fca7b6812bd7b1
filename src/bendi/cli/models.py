"""`bendi import`, `bendi list`, `bendi show`, `bendi rm`: the installed models, from the terminal."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from bendi.core.settings import load_settings


def human_bytes(count: int) -> str:
    """Decimal units (GB = 10^9), as hubs and disk vendors print sizes."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import",
        help="register a local GGUF file or Hugging Face-format folder (copied or hard-linked, hashed)",
    )
    p.add_argument(
        "file",
        type=Path,
        help="the .gguf file (for a split GGUF: any part), or a folder with config.json + safetensors",
    )
    p.add_argument("--name", help="local model name (default: the file name)")
    p.add_argument(
        "--link",
        action="store_true",
        help="hard-link instead of copying (same disk; do not edit the original)",
    )
    p.set_defaults(func=handle_import)

    p = subparsers.add_parser("list", aliases=["ls"], help="list installed models")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=handle_list)

    p = subparsers.add_parser(
        "show", help="a model's architecture, size, quantization, template, license, fit"
    )
    p.add_argument("model", help="model name (see `bendi list`)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--template", action="store_true", help="print the full chat template")
    p.add_argument("--modelfile", action="store_true", help="print a preset's (or model's) Modelfile")
    p.set_defaults(func=handle_show)

    p = subparsers.add_parser("rm", help="remove a model (and the files no other model uses) or a preset")
    p.add_argument("model", nargs="+", help="model name(s)")
    p.set_defaults(func=handle_rm)


def _store() -> Any:
    from bendi.store.store import Store

    return Store(load_settings())


def handle_import(args: argparse.Namespace) -> int:
    installed = _store().import_path(args.file, name=args.name, link=args.link)
    for note in installed.notes:
        print(f"  skipped: {note}")
    print(
        f"Imported {installed.name} ({human_bytes(installed.size_bytes)}). Run it with: bendi run {installed.name}"
    )
    return 0


def _rows() -> list[dict[str, Any]]:
    from bendi.store.gguf import read_gguf
    from bendi.store.resolve import bundled_models

    store = _store()
    rows = []
    for model in store.models():
        gguf = model.manifest.gguf
        rows.append({
            "name": model.name, "size_bytes": model.size_bytes, "quantization": gguf.get("quantization"),
            "parameter_count": gguf.get("parameter_count"), "modified_s": model.manifest.created_s,
            "digest": model.manifest.files[0].digest, "files": len(model.manifest.files),
            "source": model.manifest.source.get("kind"), "format": model.manifest.format,
        })  # fmt: skip
    names = {r["name"] for r in rows}
    for bundled in bundled_models():
        if bundled.name not in names:
            info = read_gguf(bundled.path)
            rows.append({
                "name": bundled.name, "size_bytes": bundled.size_bytes, "quantization": info.quantization,
                "parameter_count": info.parameter_count, "modified_s": bundled.modified_s, "digest": None,
                "files": 1, "source": "bundled", "format": "gguf",
            })  # fmt: skip
    return rows


def _params(count: Any) -> str:
    if not isinstance(count, int) or count <= 0:
        return "-"
    return f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.0f}M"


def handle_list(args: argparse.Namespace) -> int:
    from bendi.cli.create import preset_rows, print_presets

    rows, presets = _rows(), preset_rows()
    if args.json:
        print(json.dumps(rows + [{**p, "preset": True} for p in presets], indent=2))
        return 0
    if not rows:
        print("No models installed. Try: bendi pull deepseek-r1:7b")
        return 0
    header = f"{'NAME':<40} {'SIZE':>9} {'QUANT':<9} {'PARAMS':>7}  MODIFIED"
    print(header)
    for row in rows:
        modified = dt.datetime.fromtimestamp(row["modified_s"]).strftime("%Y-%m-%d %H:%M")
        print(f"{row['name']:<40} {human_bytes(row['size_bytes']):>9} {row['quantization'] or '-':<9} "
              f"{_params(row['parameter_count']):>7}  {modified}")  # fmt: skip
    print_presets(presets)
    return 0


def _describe(name: str) -> dict[str, Any]:
    from bendi.core.errors import UserInputError
    from bendi.store.gguf import read_gguf
    from bendi.store.resolve import resolve_model

    store = _store()
    installed = store.get(name)
    if installed is not None:
        info = dict(installed.manifest.gguf)
        info.update(name=installed.name, size_bytes=installed.size_bytes, path=str(installed.path),
                    files=[f.file_name for f in installed.manifest.files], source=installed.manifest.source,
                    verified=installed.manifest.verified, format=installed.manifest.format)  # fmt: skip
        return info
    local = resolve_model(store.layout.paths, name)  # bundled models and .gguf paths; raises if unknown
    if local.format == "hf":
        raise UserInputError(
            f"{name} is a folder; `bendi import {name}` registers it, then `bendi show` describes it."
        )
    info = read_gguf(local.path).summary()
    info.update(name=local.name, size_bytes=local.size_bytes, path=str(local.path), files=[local.path.name],
                source={"kind": local.source}, verified=None)  # fmt: skip
    return info


def _verdict(info: dict[str, Any]) -> str | None:
    """The advisor's verdict for this model on this machine (from the GGUF header and a hardware probe)."""
    from bendi.catalog.advisor import check_fit
    from bendi.catalog.estimate import model_facts_from_gguf
    from bendi.core.errors import BendiError
    from bendi.hardware.probe import probe
    from bendi.store.gguf import read_gguf

    if info.get("format") == "hf":
        return None  # the fit of a Hugging Face-format model is vLLM's or SGLang's call (`bendi plan`)
    try:
        header = read_gguf(Path(info["path"]))
        facts = model_facts_from_gguf(
            header.metadata, int(info["size_bytes"]), info["name"], params=info.get("parameter_count")
        )
        verdict = check_fit(facts, load_settings().context_tokens, probe())
    except (BendiError, ValueError, ZeroDivisionError) as exc:  # a header missing sizes: say so, still show
        return f"cannot tell ({getattr(exc, 'message', exc)})"
    return ("yes: " if verdict.fits else "no: ") + verdict.reason


def handle_show(args: argparse.Namespace) -> int:
    from bendi.cli.create import show_preset

    if show_preset(args.model, args.modelfile, args.json):
        return 0
    if args.modelfile:
        print(f"FROM {_describe(args.model)['name']}")
        return 0
    info = _describe(args.model)
    verdict = _verdict(info)
    if args.json:
        print(json.dumps({**info, "fit": verdict}, indent=2, ensure_ascii=False))
        return 0
    template = info.get("chat_template") or ""
    lines = [
        ("model", info["name"]),
        ("architecture", info.get("architecture") or "-"),
        ("parameters", _params(info.get("parameter_count"))),
        ("quantization", info.get("quantization") or "-"),
        ("context length", info.get("context_length") or "-"),
        ("format", "Hugging Face (safetensors)" if info.get("format") == "hf" else "GGUF"),
        ("layers", info.get("layer_count") or "-"),
        ("heads (kv)", f"{info.get('head_count') or '-'} ({info.get('head_count_kv') or '-'})"),
        ("size", human_bytes(int(info["size_bytes"]))),
        ("files", ", ".join(info["files"])),
        ("license", info.get("license") or "-"),
        (
            "source",
            (info.get("source") or {}).get("reference") or (info.get("source") or {}).get("kind") or "-",
        ),
        ("chat template", f"{len(template)} characters" if template else "none (a generic one is used)"),
    ]
    if verdict is not None:
        lines.append(("fits this machine", verdict))
    for label, value in lines:
        print(f"  {label:<18} {value}")
    if args.template and template:
        print()
        print(template)
    return 0


def handle_rm(args: argparse.Namespace) -> int:
    from bendi.cli.create import remove_preset_or_check

    store = _store()
    for name in args.model:
        if remove_preset_or_check(name):  # a preset; a model that presets use is refused
            continue
        freed = store.remove(name)
        print(f"Removed {name}" + (f" ({len(freed)} file(s) freed)" if freed else " (its files are shared)"))
    return 0
