"""Presets: a named base model with defaults (system prompt, parameters, few-shot turns, adapters, a
knowledge base), stored as JSON beside the store's manifests (models/presets/NAME/TAG.json).

A preset is always saved flattened: its `base` names a real model, never another preset.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bendi.core.errors import (
    AlreadyExistsError,
    InvalidModelFileError,
    InvalidNameError,
    ModelfileError,
    ModelNotFoundError,
    PresetBaseInUseError,
)
from bendi.core.paths import DataPaths, ensure_inside
from bendi.store.bundled import find_bundled
from bendi.store.local_model import AdapterRef
from bendi.store.registry import find_installed

FORMAT_VERSION = 1
MAX_PART_CHARS = 120
# Like a model name's parts, plus '+' for tuned presets named BASE+NAME (smollm2:135m+mining).
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$")
DEFAULT_TAG = "latest"


@dataclass(frozen=True)
class Preset:
    name: str  # canonical "name:tag"
    base: str  # an installed or bundled model's name (a GGUF path only before presets_create imports it)
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # Ollama option names; stop is a list
    template: str | None = None  # kept and shown; chats use the base model's own template
    messages: list[dict[str, str]] = field(default_factory=list)  # few-shot turns: {"role", "content"}
    adapters: list[AdapterRef] = field(default_factory=list)
    knowledge_base: str | None = None
    license: str | None = None
    modelfile: str | None = None  # the text it was created from, as written
    created_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION, "name": self.name, "base": self.base, "system": self.system,
            "parameters": self.parameters, "template": self.template, "messages": self.messages,
            "adapters": [{"path": str(a.path), "scale": a.scale} for a in self.adapters],
            "knowledge_base": self.knowledge_base, "license": self.license, "modelfile": self.modelfile,
            "created_s": self.created_s,
        }  # fmt: skip

    @staticmethod
    def from_json(data: dict[str, Any]) -> Preset:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {data.get('version')!r}, expected {FORMAT_VERSION}")
        adapters = [
            AdapterRef(Path(a["path"]), float(a.get("scale", 1.0))) for a in data.get("adapters") or []
        ]
        return Preset(
            name=str(data["name"]), base=str(data["base"]), system=data.get("system"),
            parameters=dict(data.get("parameters") or {}), template=data.get("template"),
            messages=[dict(m) for m in data.get("messages") or []], adapters=adapters,
            knowledge_base=data.get("knowledge_base"), license=data.get("license"),
            modelfile=data.get("modelfile"), created_s=float(data.get("created_s") or 0.0),
        )  # fmt: skip


def preset_name(raw: str) -> tuple[str, str]:
    """(name, tag) of a preset name `name[:tag]`, validated like a model name (plus '+')."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidNameError("The preset name is empty. Use letters, digits, '.', '_', '+' or '-'.")
    name, sep, tag = raw.partition(":")
    tag = tag if sep else DEFAULT_TAG
    for part, what in ((name, "preset name"), (tag, "preset tag")):
        if len(part) > MAX_PART_CHARS:
            raise InvalidNameError(
                f"The {what} is {len(part)} characters long; the limit is {MAX_PART_CHARS}."
            )
        if not _PART.match(part) or ".." in part:
            raise InvalidNameError(
                f"The {what} {part[:60]!r} is not allowed: use letters, digits, '.', '_', '+' or '-', starting "
                "with a letter or digit, no '..', and at most one ':' (NAME or NAME:TAG)."
            )
    return name, tag


def canonical_name(raw: str) -> str:
    name, tag = preset_name(raw)
    return f"{name}:{tag}"


def _root(paths: DataPaths) -> Path:
    return paths.models / "presets"


def _file(paths: DataPaths, raw: str) -> Path:
    name, tag = preset_name(raw)
    root = _root(paths)
    return ensure_inside(root, root / name / f"{tag}.json")


def _read(path: Path) -> Preset:
    try:
        return Preset.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidModelFileError(
            f"The preset file {path} is damaged ({exc}). Remove it with `bendi rm` and create the preset again."
        ) from exc


def find_preset(paths: DataPaths, name: str) -> Preset | None:
    """The preset called `name` (`name` means `name:latest`), or None; unsafe names are simply absent."""
    try:
        name_part, tag = preset_name(name)
    except InvalidNameError:
        return None
    # Every chat request asks, and most name no preset: one stat answers that before the
    # symlink-safe resolution below, which costs several system calls.
    if not os.path.isfile(_root(paths) / name_part / f"{tag}.json"):
        return None
    try:
        path = _file(paths, name)
    except InvalidNameError:
        return None
    return _read(path) if path.is_file() else None


def list_presets(paths: DataPaths) -> list[Preset]:
    """Every readable preset, by name; damaged files are skipped (`bendi show` reports them)."""
    found = []
    for path in sorted(_root(paths).glob("*/*.json")):
        with contextlib.suppress(InvalidModelFileError):
            found.append(_read(path))
    return found


def remove_preset(paths: DataPaths, name: str) -> None:
    path = _file(paths, name)
    if not path.is_file():
        raise ModelNotFoundError(f"There is no preset named {name!r}; `bendi list` shows them.")
    path.unlink()
    with contextlib.suppress(OSError):  # the folder still holds other tags
        path.parent.rmdir()


def presets_using(paths: DataPaths, model_name: str) -> list[str]:
    """Names of the presets built on `model_name` (so removing that model can be refused)."""
    wanted = {model_name}
    installed = find_installed_quietly(paths, model_name)
    if installed is not None:
        wanted.add(installed)
    return [p.name for p in list_presets(paths) if p.base in wanted]


def check_unused_base(paths: DataPaths, model_name: str) -> None:
    """Refuse to remove a model that presets are built on: their chats would fail afterwards."""
    users = presets_using(paths, model_name)
    if users:
        raise PresetBaseInUseError(
            f"{model_name} is the base of the preset(s) {', '.join(users)}; remove them first (`bendi rm "
            f"{' '.join(users)}`), then the model."
        )


def find_installed_quietly(paths: DataPaths, name: str) -> str | None:
    """The canonical name of an installed or bundled model called `name`, else None."""
    bundled = find_bundled(name)
    if bundled is not None:
        return bundled.name
    try:
        local = find_installed(paths, name)
    except (InvalidNameError, InvalidModelFileError):
        return None
    return local.name if local is not None else None


def flatten(paths: DataPaths, preset: Preset) -> Preset:
    """A preset FROM another preset becomes one FROM that preset's base, inheriting what it does not set."""
    parent = find_preset(paths, preset.base) if find_installed_quietly(paths, preset.base) is None else None
    if parent is None:
        return preset
    merged = {**parent.parameters, **preset.parameters}  # the child's value wins, stop lists included
    return replace(
        preset, base=parent.base, system=preset.system if preset.system is not None else parent.system,
        parameters=merged, template=preset.template or parent.template,
        messages=preset.messages or parent.messages, adapters=[*parent.adapters, *preset.adapters],
        knowledge_base=preset.knowledge_base or parent.knowledge_base, license=preset.license or parent.license,
    )  # fmt: skip


def _check(paths: DataPaths, preset: Preset) -> Preset:
    name = canonical_name(preset.name)
    taken = find_installed_quietly(paths, name) or find_installed_quietly(paths, preset.name)
    if taken is not None:
        raise AlreadyExistsError(
            f"{preset.name!r} is the name of an installed model ({taken}); give the preset another name."
        )
    base = find_installed_quietly(paths, preset.base)
    if base is None:
        raise ModelNotFoundError(
            f"FROM {preset.base!r}: no installed model, preset or GGUF file has that name. "
            "Run `bendi list` to see installed models, or `bendi pull` one first."
        )
    for adapter in preset.adapters:
        if not adapter.path.is_file():
            raise ModelfileError(f"ADAPTER {adapter.path}: no such file.")
    if preset.knowledge_base is not None and (
        not preset.knowledge_base.strip()
        or len(preset.knowledge_base) > 200
        or not preset.knowledge_base.isprintable()
    ):
        raise InvalidNameError(f"KNOWLEDGE {preset.knowledge_base[:60]!r} is not a knowledge-base name.")
    return replace(preset, name=name, base=base, created_s=preset.created_s or time.time())


def save_preset(paths: DataPaths, preset: Preset) -> None:
    """Validate (name free, base installed, adapters present), flatten, and write atomically.

    Saving over an existing preset of the same name replaces it (Ollama's `create` does the same)."""
    checked = _check(paths, flatten(paths, preset))
    path = _file(paths, checked.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(checked.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
