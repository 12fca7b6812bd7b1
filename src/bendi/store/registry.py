"""Installed models recorded in the store's manifests, as LocalModels the engines can load.

The store's imports run one way: formats -> manifest -> registry -> resolve (resolve adds
bundled models and paths on top of what the registry finds; the registry never imports resolve).
"""

from __future__ import annotations

from bendi.core.paths import DataPaths
from bendi.store.local_model import LocalModel
from bendi.store.manifest import Layout, Manifest


def _local(layout: Layout, manifest: Manifest) -> LocalModel:
    return LocalModel(
        name=str(manifest.name),
        path=layout.load_path(manifest),
        size_bytes=manifest.size_bytes,
        source="store",
        modified_s=manifest.created_s,
        format=manifest.format,
    )


def find_manifest(layout: Layout, name: str) -> Manifest | None:
    """The manifest for a local name, or for the hub reference a model was pulled from.

    Unsafe names raise InvalidNameError: they never reach the filesystem.
    """
    from bendi.store.reference import (
        is_hub_reference,
        is_repo_reference,
        parse_hub_file,
        parse_hub_repo,
        parse_model_name,
    )

    if not is_hub_reference(name):
        parsed = parse_model_name(name)
        return layout.read(parsed) or _catalog_alias(layout, name)
    if is_repo_reference(name):  # a whole repository: a Hugging Face-format model
        hub_repo = parse_hub_repo(name)
        found = next((m for m in layout.all() if m.source.get("reference") == hub_repo.reference), None)
        return found or layout.read(hub_repo.default_model_name())
    hub_file = parse_hub_file(name)
    hub = "hf" if hub_file.hub == "huggingface" else "modelscope"
    wanted = f"{hub}:{hub_file.repo}/{hub_file.path_in_repo}"
    manifest = next((m for m in layout.all() if m.source.get("reference") == wanted), None)
    return manifest or layout.read(hub_file.default_model_name())


def _catalog_alias(layout: Layout, name: str) -> Manifest | None:
    """`deepseek-r1:7b` finds the installed `deepseek-r1:7b-q4_K_M` (the catalog's default quant)."""
    from bendi.core.errors import BendiError
    from bendi.store.reference import parse_model_name

    try:
        from bendi.catalog.catalog import load_catalog

        canonical = load_catalog().resolve(name).name
    except (ImportError, BendiError, LookupError):
        return None
    return layout.read(parse_model_name(canonical)) if canonical != name else None


def find_installed(paths: DataPaths, name: str) -> LocalModel | None:
    """The installed model called `name` (or pulled from hub reference `name`), or None."""
    layout = Layout(paths)
    manifest = find_manifest(layout, name)
    return _local(layout, manifest) if manifest is not None else None


def list_installed(paths: DataPaths) -> list[LocalModel]:
    layout = Layout(paths)
    return [_local(layout, m) for m in layout.all()]
