"""Create a preset: import a FROM that is a GGUF file (or a Hugging Face folder) into the store, then
save the preset on top of it. Shared by `bendi create` and POST /api/create."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bendi.core.errors import AlreadyExistsError, UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.store.presets import Preset, canonical_name, find_installed_quietly, find_preset, save_preset


def is_path(base: str) -> bool:
    """FROM values the parser made absolute (modelfile._resolve_path): files, never model names."""
    return base.startswith("/")


def create_preset(
    settings: Settings, paths: DataPaths, preset: Preset, *, allow_paths: bool = True
) -> Preset:
    """Save `preset` (replacing one of the same name) and return it as stored.

    `allow_paths=False` (the HTTP API): FROM and ADAPTER must not name files on the server, which a
    client could otherwise use to probe or import arbitrary files."""
    name = canonical_name(preset.name)
    taken = find_installed_quietly(paths, name)
    if taken is not None:  # before any import: a refused preset must leave nothing behind
        raise AlreadyExistsError(
            f"{name!r} is the name of an installed model ({taken}); give the preset another name."
        )
    if not allow_paths and (is_path(preset.base) or preset.adapters):
        raise UserInputError(
            "Over the API, FROM must name an installed model or preset, and ADAPTER files cannot be given; "
            "run `bendi create NAME -f Modelfile` on the server to import a GGUF file or apply an adapter."
        )
    if is_path(preset.base):
        preset = replace(preset, base=_import(settings, paths, Path(preset.base), name))
    save_preset(paths, replace(preset, name=name))
    saved = find_preset(paths, name)
    assert saved is not None  # just written
    return saved


def _import(settings: Settings, paths: DataPaths, file: Path, preset_name: str) -> str:
    from bendi.store.store import Store

    if not file.exists():
        raise UserInputError(f"FROM {file}: there is no such file. Give a path relative to the Modelfile's folder, "
                             "or an installed model's name (see `bendi list`).")  # fmt: skip
    stem = file.name.rsplit(".", 1)[0].lower()[:120] if file.is_file() else file.name.lower()[:120]
    # Ollama's `create x` FROM ./x.gguf: the weights and the preset would share a name; keep them apart.
    name = f"{stem}-weights" if f"{stem}:latest" == preset_name or stem == preset_name else None
    installed = Store(settings, paths).import_path(file, name=name)
    return installed.name
