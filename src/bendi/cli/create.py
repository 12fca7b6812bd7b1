"""`bendi create NAME -f Modelfile`, and the preset parts of `bendi list`, `bendi show`, `bendi rm`."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from bendi.core.errors import UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import load_settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "create", help="make a preset from a Modelfile (Ollama syntax): base model, system prompt, parameters"
    )
    p.add_argument("name", help="the preset's name, e.g. safety-assistant")
    p.add_argument("-f", "--file", type=Path, default=Path("Modelfile"),
                   help="the Modelfile (default: ./Modelfile); FROM and ADAPTER paths are relative to its folder")  # fmt: skip
    p.set_defaults(func=handle_create)


def _paths() -> DataPaths:
    return DataPaths(load_settings().home)


def handle_create(args: argparse.Namespace) -> int:
    from bendi.store.modelfile import MAX_MODELFILE_BYTES, parse_modelfile
    from bendi.store.modelfile_params import not_applied
    from bendi.store.presets_create import create_preset

    file: Path = args.file.expanduser()
    try:
        if file.stat().st_size > MAX_MODELFILE_BYTES:
            raise UserInputError(f"{file} is {file.stat().st_size / 1e6:.1f} MB; a Modelfile may be at most "
                                 f"{MAX_MODELFILE_BYTES / 1e6:.0f} MB.")  # fmt: skip
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"Cannot read the Modelfile {file}: {exc}. Pass it with -f FILE.") from exc
    settings = load_settings()
    paths = DataPaths(settings.home)
    preset = parse_modelfile(text, file.resolve().parent, name=args.name)
    if preset.knowledge_base:
        preset = replace(preset, knowledge_base=_knowledge_base_id(preset.knowledge_base))
    saved = create_preset(settings, paths, preset)
    if saved.adapters:
        _check_adapters(paths, saved)
    for key in not_applied(saved.parameters):
        print(
            f"  note: PARAMETER {key} is kept but not applied per request (the server's settings decide it)"
        )
    if saved.template:
        print("  note: TEMPLATE is kept and shown; chats use the base model's own chat template")
    print(f"Created preset {saved.name} (FROM {saved.base}). Run it with: bendi run {saved.name}")
    return 0


def _check_adapters(paths: DataPaths, preset: Any) -> None:
    """An adapter made for another base is refused now, not at the first chat (the preset is removed)."""
    from bendi.core.errors import BendiError
    from bendi.store.presets import remove_preset
    from bendi.store.resolve import preset_model

    try:
        from bendi.engines.adapters import check_adapters
    except ImportError:  # an install without the adapter checks: the engine pool checks at load
        return
    try:
        check_adapters(preset_model(paths, preset))
    except BendiError:
        remove_preset(paths, preset.name)
        raise


def _knowledge_base_id(name: str) -> str:
    """The identifier of the base `name` names (an identifier or display name); NotFoundError if none."""
    from bendi.access.scope import KbScope
    from bendi.services import build_services

    # Every base: the CLI runs as the machine's operator, like `bendi kb` (cli/kb.py).
    return str(build_services(load_settings()).knowledge.get(name, KbScope.everything()).name)


# --- hooks for cli/models.py (list, show, rm) -------------------------------------------------
def preset_rows() -> list[dict[str, Any]]:
    from bendi.store.presets import list_presets

    return [{"name": p.name, "base": p.base, "knowledge_base": p.knowledge_base, "modified_s": p.created_s,
             "adapters": [str(a.path) for a in p.adapters]} for p in list_presets(_paths())]  # fmt: skip


def print_presets(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print()
    print(f"{'PRESET':<40} {'FROM':<30} KNOWLEDGE")
    for row in rows:
        print(f"{row['name']:<40} {row['base']:<30} {row['knowledge_base'] or '-'}")


def show_preset(name: str, modelfile: bool, as_json: bool) -> bool:
    """Print a preset (`bendi show NAME [--modelfile] [--json]`); False when `name` is no preset."""
    import json

    from bendi.store.modelfile_write import render_modelfile
    from bendi.store.presets import find_installed_quietly, find_preset

    paths = _paths()
    preset = find_preset(paths, name) if find_installed_quietly(paths, name) is None else None
    if preset is None:
        return False
    if modelfile:
        print(render_modelfile(preset), end="")
    elif as_json:
        print(json.dumps(preset.to_json(), indent=2, ensure_ascii=False))
    else:
        rows = [("preset", preset.name), ("from", preset.base), ("system", (preset.system or "-")[:70]),
                ("parameters", ", ".join(f"{k}={v}" for k, v in preset.parameters.items()) or "-"),
                ("messages", str(len(preset.messages))), ("adapters", ", ".join(str(a.path) for a in preset.adapters) or "-"),
                ("knowledge base", preset.knowledge_base or "-")]  # fmt: skip
        for label, value in rows:
            print(f"  {label:<18} {value}")
    return True


def remove_preset_or_check(name: str) -> bool:
    """`bendi rm NAME`: True when NAME was a preset (removed); refuses a model that presets use."""
    from bendi.store.presets import check_unused_base, find_installed_quietly, find_preset, remove_preset

    paths = _paths()
    if find_installed_quietly(paths, name) is None and find_preset(paths, name) is not None:
        remove_preset(paths, name)
        print(f"Removed preset {name}")
        return True
    check_unused_base(paths, name)
    return False


def run_defaults(services: Any, model: str, args: argparse.Namespace) -> tuple[Any, str | None, list[Any]]:
    """`bendi run`: (sampling, system prompt, few-shot turns) from the flags over the preset's defaults."""
    import sys

    from bendi.engines.messages import ChatMessage
    from bendi.gateway.ollama_api.translate import to_sampling
    from bendi.gateway.presets import ollama_options, preset_for

    flags = {"temperature": args.temperature, "seed": args.seed, "num_predict": args.max_tokens}
    options = {k: v for k, v in flags.items() if v is not None}
    preset = preset_for(services, model)
    if preset is None:
        options.setdefault("temperature", 0.6)
        return to_sampling(options, services.settings.context_tokens), args.system, []
    if preset.knowledge_base:
        print(f"note: {preset.name} answers from the knowledge base {preset.knowledge_base} over the API and the "
              "web UI; here it chats without it (use `bendi kb ask` for cited answers).", file=sys.stderr)  # fmt: skip
    options = ollama_options(preset, options)
    turns = [ChatMessage(m["role"], m["content"]) for m in preset.messages]  # type: ignore[arg-type]
    system = args.system if args.system is not None else preset.system
    return to_sampling(options, services.settings.context_tokens), system, turns
