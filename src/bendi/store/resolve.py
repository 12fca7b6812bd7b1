"""Turn what a user typed (a model name, a GGUF path) into a local model file to load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bendi.core.errors import InvalidNameError, ModelNotFoundError
from bendi.core.paths import DataPaths
from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path, find_bundled


@dataclass(frozen=True)
class LocalModel:
    """A model that can be loaded now."""

    name: str  # canonical name, e.g. "smollm2:135m" or "deepseek-r1:7b-q4_K_M"
    path: Path  # the GGUF to load (for split GGUFs: the first part)
    size_bytes: int
    source: str  # "bundled", "store", "file"
    modified_s: float = 0.0


def _local(name: str, path: Path, source: str) -> LocalModel:
    stat = path.stat()
    return LocalModel(name=name, path=path, size_bytes=stat.st_size, source=source, modified_s=stat.st_mtime)


def bundled_models() -> list[LocalModel]:
    found = []
    for model in BUNDLED_MODELS:
        path = bundled_model_path(model)
        if path is not None:
            found.append(_local(model.name, path, "bundled"))
    return found


def resolve_model(paths: DataPaths, name_or_path: str) -> LocalModel:
    """Resolve a store name, a bundled name, or a path to a local .gguf file."""
    candidate = Path(name_or_path).expanduser()
    if name_or_path.endswith(".gguf") and candidate.is_file():
        return _local(candidate.name, candidate.resolve(), "file")
    bundled = find_bundled(name_or_path)
    if bundled is not None:
        path = bundled_model_path(bundled)
        if path is not None:
            return _local(bundled.name, path, "bundled")
    from bendi.store.registry import find_installed  # the store's manifests (model-store issue)

    try:
        installed = find_installed(paths, name_or_path)
    except InvalidNameError:  # a name that cannot exist is simply not installed (404, like any unknown)
        installed = None
    if installed is not None:
        return installed
    from bendi.store.reference import is_hub_reference

    if name_or_path.endswith(".gguf") and not is_hub_reference(name_or_path):
        raise ModelNotFoundError(f"No model file at {name_or_path}. Check the path.")
    raise ModelNotFoundError(
        f"Model {name_or_path!r} is not installed. Run `bendi list` to see installed models, "
        f"or `bendi pull {name_or_path}` to download it."
    )


def installed_models(paths: DataPaths) -> list[LocalModel]:
    """Every model that can be loaded by name: the store's, then the bundled ones."""
    from bendi.store.registry import list_installed

    models = list_installed(paths)
    names = {m.name for m in models}
    return models + [m for m in bundled_models() if m.name not in names]
