"""`bendi bundle create`: one archive with everything a machine without network needs to run bendi."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bendi.core.errors import ModelNotFoundError
from bendi.core.settings import Settings
from bendi.ops.bundle_layout import (
    MANIFEST_NAME,
    SUMS_NAME,
    TOP_DIR,
    BundleError,
    BundleManifest,
    BundleModel,
    HashingReader,
    HashingWriter,
    check_member_path,
    format_sums,
)
from bendi.ops.bundle_wheels import (
    Target,
    build_bendi_wheel,
    check_wheel_fits,
    locate_llama_wheel,
    required_glibc,
    resolve_wheels,
    wheel_has_cuda,
)
from bendi.store.bundled import find_bundled
from bendi.store.store import Store

SOURCE_ROOT = Path(__file__).resolve().parents[3]  # the checkout: src/bendi/ops/ -> repository root
INSTALLER = Path("scripts") / "bundle_install.sh"


@dataclass(frozen=True)
class BundleRequest:
    output: Path
    models: tuple[str, ...]
    target: Target
    with_demo_data: bool = False
    cuda: bool = False
    llama_wheel: Path | None = None
    source_root: Path = SOURCE_ROOT
    cache_dir: Path | None = None  # default ~/.cache/bendi/bundle-wheels/


@dataclass(frozen=True)
class CreatedBundle:
    path: Path
    sha256: str
    size_bytes: int
    manifest: BundleManifest
    notes: tuple[str, ...]


def default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "bendi" / "bundle-wheels"


def create_bundle(
    settings: Settings, request: BundleRequest, progress: Callable[[str], None] = lambda _m: None
) -> CreatedBundle:
    """Resolve and fetch the wheels, export the models, write the archive atomically with its .sha256."""
    installer = request.source_root / INSTALLER
    if not installer.is_file():
        raise BundleError(
            f"{installer} is missing; `bendi bundle create` runs from a bendi source checkout (it builds bendi's "
            "wheel and ships scripts/bundle_install.sh)."
        )
    notes: list[str] = []
    store_models = _chosen_models(settings, request.models, notes)
    output = request.output.expanduser().resolve()
    if not output.parent.is_dir():
        raise BundleError(f"The folder {output.parent} does not exist; create it or choose another -o path.")
    llama = locate_llama_wheel(request.llama_wheel)
    check_wheel_fits(llama, request.target)
    cuda = wheel_has_cuda(llama)
    if request.cuda and not cuda:
        raise BundleError(
            f"{llama.name} is a CPU build. Build a CUDA one with `CMAKE_ARGS=-DGGML_CUDA=on bash "
            "scripts/install_llama_cpp.sh` on a machine with the CUDA toolkit and pass it with --llama-wheel."
        )
    cache = request.cache_dir or default_cache_dir()
    with tempfile.TemporaryDirectory(prefix="bendi-bundle-") as tmp:
        work = Path(tmp)
        progress("building bendi's wheel")
        bendi_wheel = build_bendi_wheel(request.source_root, work / "local")
        if request.with_demo_data and not _has_demo_data(bendi_wheel):
            raise BundleError(
                "This bendi has no demo data (bendi/demo/) to bundle; leave out --with-demo-data."
            )
        progress(f"resolving dependencies for {request.target.platform}, Python {request.target.python}")
        wheels = resolve_wheels(request.target, [bendi_wheel, llama], ["pip"], cache, work)
        manifest = BundleManifest(
            bendi_version=_wheel_version(bendi_wheel),
            platform=request.target.platform,
            python=request.target.python,
            min_glibc=required_glibc(wheels),
            requirements=(
                f"bendi=={_wheel_version(bendi_wheel)}",
                f"llama-cpp-python=={_wheel_version(llama)}",
                "pip",
            ),
            models=tuple(chosen.model for chosen in store_models),
            demo_data=request.with_demo_data,
            cuda=cuda,
            created_s=time.time(),
        )
        progress(f"writing {output.name} ({len(wheels)} wheels, {len(store_models)} models)")
        digest, size = _write_archive(output, manifest, installer, wheels, store_models)
    if cuda:
        notes.append(
            "The llama.cpp wheel is a CUDA build: the target needs the NVIDIA driver and CUDA runtime."
        )
    return CreatedBundle(output, digest, size, manifest, tuple(notes))


@dataclass(frozen=True)
class _ChosenModel:
    model: BundleModel
    paths: list[Path]  # the store's blobs, in the order of model.files
    store_manifest: dict[str, Any]


def _chosen_models(settings: Settings, names: tuple[str, ...], notes: list[str]) -> list[_ChosenModel]:
    store = Store(settings)
    wanted = list(dict.fromkeys(names))
    if settings.embedding_model.startswith("gguf:"):
        wanted.append(settings.embedding_model.split(":", 1)[1])  # the knowledge bases' embedder
    chosen: list[_ChosenModel] = []
    for name in dict.fromkeys(wanted):
        installed = store.get(name)
        if installed is None:
            if find_bundled(name) is not None:
                notes.append(f"{name} needs no export: it ships inside its Python package, which is bundled.")
                continue
            raise ModelNotFoundError(f"Model {name!r} is not installed here; `bendi pull {name}` first.")
        manifest = installed.manifest
        if not all(f.file_name.lower().endswith(".gguf") for f in manifest.files):
            raise BundleError(f"{name} is not a GGUF model; bundles carry GGUF models only for now.")
        folder = check_member_path(f"models/{manifest.name.name}/{manifest.name.tag}")
        files = tuple(check_member_path(f.file_name) for f in manifest.files)
        paths = [store.layout.blob_path(f.digest) for f in manifest.files]
        bundle_model = BundleModel(str(manifest.name), folder, files, tuple(f.digest for f in manifest.files))
        chosen.append(_ChosenModel(bundle_model, paths, manifest.to_json()))
    return chosen


def _write_archive(
    output: Path,
    manifest: BundleManifest,
    installer: Path,
    wheels: list[Path],
    models: list[_ChosenModel],
) -> tuple[str, int]:
    part = output.with_name(output.name + f".part-{os.getpid()}")
    try:
        with open(part, "wb") as raw:
            writer = HashingWriter(raw)
            # Wheels are zip files and quantised weights look random: gzip -1 saved 0.5% on the default
            # bundle at a CPU cost, so level 0 keeps the .tar.gz users expect at the speed of the disk.
            with tarfile.open(fileobj=writer, mode="w:gz", compresslevel=0) as tar:  # type: ignore[call-overload]
                _add_dir(tar, TOP_DIR)
                _add_file(tar, manifest, "install.sh", installer, executable=True)
                _add_bytes(tar, manifest, "README.txt", _readme(manifest).encode())
                for wheel in sorted(wheels, key=lambda w: w.name):
                    _add_file(tar, manifest, f"wheels/{wheel.name}", wheel)
                for chosen in models:
                    model = chosen.model
                    for file_name, digest, path in zip(model.files, model.digests, chosen.paths, strict=True):
                        got = _add_file(tar, manifest, f"{model.folder}/{file_name}", path)
                        if f"sha256-{got}" != digest:
                            raise BundleError(
                                f"The store's copy of {model.name} ({file_name}) is damaged: its hash is not "
                                f"{digest}. Remove it with `bendi rm {model.name}` and pull it again."
                            )
                    store_manifest = json.dumps(chosen.store_manifest, indent=2, ensure_ascii=False)
                    _add_bytes(tar, manifest, f"{model.folder}/manifest.json", store_manifest.encode())
                # bundle.json lists every file but itself and SHA256SUMS; SHA256SUMS lists bundle.json too.
                _add_bytes(tar, manifest, MANIFEST_NAME, json.dumps(manifest.to_json(), indent=2).encode())
                _add_bytes(tar, None, SUMS_NAME, format_sums(manifest.files).encode())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(part, output)
    finally:
        part.unlink(missing_ok=True)
    digest = writer.sha256.hexdigest()
    output.with_name(output.name + ".sha256").write_text(f"{digest}  {output.name}\n", encoding="utf-8")
    return digest, output.stat().st_size


def _info(name: str, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(f"{TOP_DIR}/{name}" if name != TOP_DIR else TOP_DIR)
    info.size, info.mode, info.mtime = size, mode, int(time.time())
    info.uname = info.gname = "root"
    return info


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = _info(name, 0, 0o755)
    info.type = tarfile.DIRTYPE
    tar.addfile(info)


def _add_file(
    tar: tarfile.TarFile, manifest: BundleManifest | None, name: str, path: Path, *, executable: bool = False
) -> str:
    check_member_path(name)
    with open(path, "rb") as handle:
        reader = HashingReader(handle)
        tar.addfile(_info(name, os.fstat(handle.fileno()).st_size, 0o755 if executable else 0o644), reader)
    digest = reader.sha256.hexdigest()
    if manifest is not None:
        manifest.files[name] = (digest, reader.size_bytes)
    return digest


def _add_bytes(tar: tarfile.TarFile, manifest: BundleManifest | None, name: str, data: bytes) -> None:
    import hashlib

    tar.addfile(_info(name, len(data), 0o644), io.BytesIO(data))
    if manifest is not None:
        manifest.files[name] = (hashlib.sha256(data).hexdigest(), len(data))


def _readme(manifest: BundleManifest) -> str:
    models = ", ".join(m.name for m in manifest.models) or "none besides the built-in smollm2:135m"
    return (
        f"bendi {manifest.bendi_version} offline bundle for {manifest.platform}, Python {manifest.python}"
        f" (glibc {manifest.min_glibc or 'any'} or newer).\nModels: {models}.\n\n"
        "Install (no network needed):\n  tar xzf bendi-offline.tar.gz && bash bendi-offline/install.sh "
        "[--prefix /opt/bendi] [--no-start]\n\nThe installer checks every file against SHA256SUMS first and "
        "installs nothing if one is missing or damaged.\n"
    )


def _wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def _has_demo_data(wheel: Path) -> bool:
    with zipfile.ZipFile(wheel) as archive:
        return any(name.startswith("bendi/demo/") and not name.endswith(".py") for name in archive.namelist())
