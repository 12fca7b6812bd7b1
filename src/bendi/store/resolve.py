"""Turn what a user typed (a model name, a GGUF path) into a local model to load.

The top of the store's one-way imports: resolve -> registry -> manifest -> formats.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bendi.core.errors import InvalidNameError, ModelNotFoundError
from bendi.core.paths import DataPaths
from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path, find_bundled
from bendi.store.local_model import LocalModel, ModelFormat
from bendi.store.presets import Preset, find_preset
from bendi.store.reference import is_hub_reference
from bendi.store.registry import find_installed, list_installed

__all__ = [
    "LocalModel",
    "ModelFormat",
    "bundled_models",
    "installed_models",
    "is_hf_folder",
    "preset_model",
    "resolve_model",
]


def _local(name: str, path: Path, source: str) -> LocalModel:
    stat = path.stat()
    return LocalModel(name=name, path=path, size_bytes=stat.st_size, source=source, modified_s=stat.st_mtime)


def is_hf_folder(path: Path) -> bool:
    """A folder with config.json (a Hugging Face-format model); any name a user typed may reach here."""
    try:
        return path.is_dir() and (path / "config.json").is_file()
    except OSError:  # a name too long for the filesystem is not a folder
        return False


def bundled_models() -> list[LocalModel]:
    found = []
    for model in BUNDLED_MODELS:
        path = bundled_model_path(model)
        if path is not None:
            found.append(_local(model.name, path, "bundled"))
    return found


def resolve_model(paths: DataPaths, name_or_path: str) -> LocalModel:
    """Resolve a store name, a bundled name, a path to a .gguf file or to a Hugging Face-format folder."""
    candidate = Path(name_or_path).expanduser()
    if name_or_path.endswith(".gguf") and candidate.is_file():
        return _local(candidate.name, candidate.resolve(), "file")
    if is_hf_folder(candidate):
        folder = candidate.resolve()
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        return LocalModel(folder.name, folder, size, "file", folder.stat().st_mtime, "hf")
    bundled = find_bundled(name_or_path)
    if bundled is not None:
        path = bundled_model_path(bundled)
        if path is not None:
            return _local(bundled.name, path, "bundled")
    try:
        installed = find_installed(paths, name_or_path)
    except InvalidNameError:  # a name that cannot exist is simply not installed (404, like any unknown)
        installed = None
    if installed is not None:
        return installed
    preset = find_preset(paths, name_or_path)
    if preset is not None:
        return preset_model(paths, preset)
    if name_or_path.endswith(".gguf") and not is_hub_reference(name_or_path):
        raise ModelNotFoundError(f"No model file at {name_or_path}. Check the path.")
    raise ModelNotFoundError(
        f"Model {name_or_path!r} is not installed. Run `bendi list` to see installed models, "
        f"or `bendi pull {name_or_path}` to download it."
    )


def preset_model(paths: DataPaths, preset: Preset) -> LocalModel:
    """What a preset loads: its base as is (so presets share the base's engine), or, with adapters,
    the base plus those adapters under the preset's name (an engine of its own)."""
    base = resolve_model(paths, preset.base)
    if not preset.adapters:
        return base
    return replace(base, name=preset.name, source="preset", adapters=tuple(preset.adapters))


def installed_models(paths: DataPaths) -> list[LocalModel]:
    """Every model that can be loaded by name: the store's, then the bundled ones."""
    models = list_installed(paths)
    names = {m.name for m in models}
    return models + [m for m in bundled_models() if m.name not in names]
