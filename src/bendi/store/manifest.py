"""Manifests and content-addressed blobs on disk: the store's only persistent state.

blobs/sha256-<hex>                 the bytes, named by their SHA-256 (shared between models)
manifests/<name>/<tag>.json        which blobs make up a model, where they came from, GGUF summary
views/<name>/<tag>/<file>          links with the published names, for split GGUFs (llama.cpp
                                   finds part 2..N next to part 1 by name) and HF-format models
                                   (an engine loads the folder: config.json, tokenizer, shards)

Manifest versions: 1 (GGUF only, no `format`), 2 (adds `format`: "gguf" | "hf"). Version 1 still
reads; a newer version than this bendi knows is refused, never guessed at.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bendi.core.errors import InvalidModelFileError, InvalidNameError
from bendi.core.paths import DataPaths, ensure_inside, safe_component
from bendi.store.local_model import ModelFormat
from bendi.store.reference import ModelName, parse_digest, parse_model_name

MANIFEST_VERSION = 2
MODEL_FORMATS = ("gguf", "hf")


class ManifestVersionError(InvalidModelFileError):
    """A manifest written by a newer bendi: its meaning is unknown here, so it is left untouched."""

    code = "manifest_too_new"


@dataclass(frozen=True)
class ManifestFile:
    """One published file of a model (one part of a split GGUF) and the blob holding it."""

    file_name: str
    digest: str  # "sha256-<hex>"
    size_bytes: int


@dataclass(frozen=True)
class Manifest:
    name: ModelName
    files: tuple[ManifestFile, ...]
    source: dict[str, Any]  # {"kind": "huggingface", "repo": ..., "url": ...} or {"kind": "import", ...}
    gguf: dict[str, Any]  # GgufInfo.summary() of the first part (HF: the same keys from config.json)
    created_s: float
    verified: bool  # checked against a hash the source published (imports: hashed locally)
    format: ModelFormat = "gguf"

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "name": self.name.name,
            "tag": self.name.tag,
            "files": [
                {"file_name": f.file_name, "digest": f.digest, "size_bytes": f.size_bytes} for f in self.files
            ],
            "source": self.source,
            "gguf": self.gguf,
            "created_s": self.created_s,
            "verified": self.verified,
            "format": self.format,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Manifest:
        version = data.get("version", 1)
        if not isinstance(version, int) or version < 1:
            raise ValueError(f"manifest version {version!r} is not a positive integer")
        if version > MANIFEST_VERSION:
            raise ManifestVersionError(
                f"The manifest of {data.get('name')}:{data.get('tag')} was written by a newer bendi (manifest "
                f"version {version}; this bendi reads up to {MANIFEST_VERSION}). Upgrade bendi to use or remove it."
            )
        model_format = data.get("format", "gguf") if version >= 2 else "gguf"
        if model_format not in MODEL_FORMATS:
            raise ValueError(f"unknown model format {model_format!r}")
        files = tuple(
            ManifestFile(
                safe_component(str(f["file_name"]), what="file name"),
                parse_digest(f["digest"]),
                int(f["size_bytes"]),
            )
            for f in data["files"]
        )
        if not files:
            raise ValueError("manifest lists no files")
        return Manifest(
            name=parse_model_name(f"{data['name']}:{data['tag']}"),
            files=files,
            source=dict(data.get("source") or {}),
            gguf=dict(data.get("gguf") or {}),
            created_s=float(data.get("created_s", 0.0)),
            verified=bool(data.get("verified", False)),
            format=cast(ModelFormat, model_format),
        )


class Layout:
    """Paths and atomic reads/writes of blobs and manifests under one DataPaths."""

    def __init__(self, paths: DataPaths) -> None:
        self.paths = paths

    def ensure(self) -> Layout:
        self.paths.ensure()
        self.paths.model_views.mkdir(parents=True, exist_ok=True)
        return self

    def blob_path(self, digest: str) -> Path:
        return ensure_inside(self.paths.blobs, self.paths.blobs / parse_digest(digest))

    def manifest_path(self, name: ModelName) -> Path:
        return ensure_inside(self.paths.manifests, self.paths.manifests / name.name / f"{name.tag}.json")

    def view_dir(self, name: ModelName) -> Path:
        return ensure_inside(self.paths.model_views, self.paths.model_views / name.name / name.tag)

    def read(self, name: ModelName) -> Manifest | None:
        path = self.manifest_path(name)
        try:
            return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except ManifestVersionError:
            raise
        except (OSError, ValueError, KeyError, TypeError, InvalidNameError) as exc:
            raise InvalidModelFileError(
                f"The manifest {path} is damaged ({exc}). Remove the model with `bendi rm {name}` and pull it again."
            ) from exc

    def write(self, manifest: Manifest) -> None:
        """Atomically replace the manifest (a reader sees the old or the new one, never half)."""
        path = self.manifest_path(manifest.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(manifest.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    def all(self) -> Iterator[Manifest]:
        """Every readable manifest; damaged ones are skipped (`bendi show` reports them)."""
        root = self.paths.manifests
        if not root.is_dir():
            return
        for path in sorted(root.glob("*/*.json")):
            try:
                name = parse_model_name(f"{path.parent.name}:{path.stem}")
                manifest = self.read(name)
            except (InvalidModelFileError, InvalidNameError, ValueError):
                continue  # a damaged manifest or a stray file someone put there
            if manifest is not None:
                yield manifest

    def load_path(self, manifest: Manifest) -> Path:
        """What an engine loads: the blob, part 1 in the view folder (split GGUF), the folder (HF)."""
        if manifest.format == "hf":
            view = self.view_dir(manifest.name)
            if not all((view / item.file_name).exists() for item in manifest.files):
                self.make_view(manifest)
            return view
        if len(manifest.files) == 1:
            return self.blob_path(manifest.files[0].digest)
        view = self.view_dir(manifest.name)
        for item in manifest.files:
            link = view / item.file_name
            if not link.exists():
                self.make_view(manifest)
                break
        return view / manifest.files[0].file_name

    def make_view(self, manifest: Manifest) -> None:
        view = self.view_dir(manifest.name)
        view.mkdir(parents=True, exist_ok=True)
        names = {item.file_name for item in manifest.files}
        for stale in view.iterdir():  # a re-pull of a changed repository: old names must not linger
            if stale.name not in names:
                stale.unlink()
        for item in manifest.files:
            link = ensure_inside(view, view / item.file_name)
            tmp = link.with_name(link.name + ".tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.blob_path(item.digest))
            os.replace(tmp, link)

    def remove(self, name: ModelName) -> list[str]:
        """Delete a model's manifest and view, then every blob no remaining manifest references."""
        manifest = self.read(name)
        path = self.manifest_path(name)
        path.unlink(missing_ok=True)
        view = self.view_dir(name)
        if view.is_dir():
            for link in view.iterdir():
                link.unlink()
            view.rmdir()
        for folder in (path.parent, view.parent):
            with contextlib.suppress(OSError):  # the folder still holds other tags
                folder.rmdir()
        if manifest is None:
            return []
        still_used = self.digests_in_use()
        removed = []
        for item in manifest.files:
            if item.digest not in still_used:
                self.blob_path(item.digest).unlink(missing_ok=True)
                removed.append(item.digest)
        return removed

    def digests_in_use(self) -> set[str]:
        """Every digest any manifest file names, read leniently: a manifest this bendi cannot read
        (damaged, or from a newer version) still keeps its blobs from being freed."""
        used: set[str] = set()
        for path in self.paths.manifests.glob("*/*.json"):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                used.update(str(f["digest"]) for f in data["files"] if isinstance(f, dict))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return used
