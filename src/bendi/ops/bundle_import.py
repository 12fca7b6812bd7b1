"""On the target: import an unpacked bundle's models into the store (what install.sh calls after pip)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from bendi.core.settings import Settings
from bendi.ops.bundle_layout import MANIFEST_NAME, BundleError, BundleManifest
from bendi.store.store import Store


def read_bundle_manifest(folder: Path) -> BundleManifest:
    path = folder / MANIFEST_NAME
    try:
        return BundleManifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise BundleError(f"{folder} is not an unpacked bendi bundle: it has no {MANIFEST_NAME}.") from exc
    except ValueError as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); the bundle is damaged.") from exc


def import_bundle_models(
    settings: Settings, folder: Path, progress: Callable[[str], None] = lambda _m: None
) -> list[str]:
    """Import each model through the store's own import (hashed, header-checked); returns their names.

    A model already in the store with the same blobs is left as it is, so running install.sh twice is cheap.
    """
    manifest = read_bundle_manifest(folder)
    store = Store(settings)
    names = []
    for model in manifest.models:
        existing = store.get(model.name)
        if existing is not None and tuple(f.digest for f in existing.manifest.files) == model.digests:
            progress(f"{model.name} is already in the store")
            names.append(model.name)
            continue
        progress(f"importing {model.name}")
        installed = store.import_file(folder / model.folder / model.files[0], name=model.name)
        got = tuple(f.digest for f in installed.manifest.files)
        if got != model.digests:
            store.remove(model.name)
            raise BundleError(
                f"{model.name} imported with different contents than the bundle lists; it was removed again. "
                "Verify the bundle (`bendi bundle verify`) and unpack it afresh."
            )
        names.append(model.name)
    return names
