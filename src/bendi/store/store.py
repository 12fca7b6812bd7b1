"""The model store's operations (pull, import, list, get, remove), free of CLI and HTTP code.

The CLI renders `PullProgress` as a progress bar; the Ollama API streams it as NDJSON.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bendi.core.errors import (
    BendiError,
    DiskFullError,
    DownloadError,
    IntegrityError,
    InvalidModelFileError,
    UserInputError,
)
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.store.download import PARALLEL_MIN_BYTES, SPLIT_PROBE_S, Downloader
from bendi.store.formats import check_model_file, check_safetensors
from bendi.store.gguf import GgufInfo, read_gguf
from bendi.store.hf_store import import_folder, pull_repo
from bendi.store.hosts import GuardedClient, HostPolicy
from bendi.store.manifest import Layout, Manifest, ManifestFile, ManifestVersionError
from bendi.store.partial import DownloadCancelled, DownloadInProgressError, check_disk_space
from bendi.store.plan import PullPlan, plan_pull
from bendi.store.progress import Meter, ProgressFn, PullProgress
from bendi.store.reference import ModelName, parse_model_name, split_parts
from bendi.store.sources import RemoteFile, RemoteNotFoundError, Source, sources_for

__all__ = ["InstalledModel", "ProgressFn", "PullProgress", "Store"]


@dataclass(frozen=True)
class InstalledModel:
    name: str
    manifest: Manifest
    path: Path  # what an engine loads (split GGUF: part 1 in the view folder; HF format: the folder)
    notes: tuple[str, ...] = ()  # what an import or pull left out, for the user

    @property
    def size_bytes(self) -> int:
        return self.manifest.size_bytes

    @property
    def format(self) -> str:
        return self.manifest.format


class Store:
    def __init__(
        self,
        settings: Settings,
        paths: DataPaths | None = None,
        *,
        retry_backoff_s: float = 0.5,
        parallel_min_bytes: int = PARALLEL_MIN_BYTES,
        split_probe_s: float = SPLIT_PROBE_S,
    ) -> None:
        self.settings = settings
        self.retry_backoff_s = retry_backoff_s
        self.parallel_min_bytes = parallel_min_bytes
        self.split_probe_s = split_probe_s
        self.layout = Layout(paths or DataPaths(settings.home)).ensure()

    # ---- reading -------------------------------------------------------------------------------
    def get(self, name: str) -> InstalledModel | None:
        """The installed model for a local name or the hub reference it was pulled from."""
        from bendi.store.registry import find_manifest

        manifest = find_manifest(self.layout, name)
        return self._installed(manifest) if manifest is not None else None

    def models(self) -> list[InstalledModel]:
        return [self._installed(m) for m in self.layout.all()]

    def remove(self, name: str) -> list[str]:
        """Delete a model; returns the digests of blobs freed (those no other model uses)."""
        from bendi.core.errors import ModelNotFoundError

        try:
            installed = self.get(name)
        except ManifestVersionError:
            raise  # a newer bendi's model: its blobs cannot be told apart here, so nothing is deleted
        except InvalidModelFileError:  # a damaged manifest: remove it; its blobs cannot be known
            self.layout.manifest_path(parse_model_name(name)).unlink(missing_ok=True)
            return []
        if installed is None:
            raise ModelNotFoundError(f"Model {name!r} is not installed; `bendi list` shows what is.")
        return self.layout.remove(installed.manifest.name)

    def _installed(self, manifest: Manifest, notes: tuple[str, ...] = ()) -> InstalledModel:
        return InstalledModel(str(manifest.name), manifest, self.layout.load_path(manifest), notes)

    # ---- pulling -------------------------------------------------------------------------------
    def pull(
        self,
        reference: str,
        *,
        source: str = "auto",
        quant: str | None = None,
        name: str | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        model_format: str | None = None,
    ) -> InstalledModel:
        """Download (resuming) and verify a model, then register it under its local name."""
        plan = plan_pull(reference, quant=quant, name=name, model_format=model_format)
        emit = progress or (lambda _p: None)
        emit(PullProgress("resolving", str(plan.name)))
        failures: list[tuple[str, DownloadError]] = []
        with GuardedClient(HostPolicy(self.settings)) as http:
            for candidate in sources_for(self.settings, source):
                repo = plan.repos.get(candidate.name)
                if repo is None:
                    continue
                try:
                    if plan.format == "hf":
                        return self._fetch_repo(plan, candidate, http, progress, cancel)
                    remotes = [candidate.locate(http, repo, f.path_in_repo) for f in plan.files]
                    return self._fetch_all(plan, http, remotes, progress, cancel)
                except (
                    IntegrityError,
                    DiskFullError,
                    DownloadCancelled,
                    DownloadInProgressError,
                    InvalidModelFileError,
                ):
                    raise
                except DownloadError as exc:
                    failures.append((candidate.name, exc))
        if not failures:
            raise UserInputError(
                f"No configured source has {reference!r} (source {source!r}); try --source auto."
            )
        if len(failures) == 1:
            raise failures[0][1]
        summary = " | ".join(f"{name}: {exc.message}" for name, exc in failures)
        if all(isinstance(exc, RemoteNotFoundError) for _, exc in failures):
            raise RemoteNotFoundError(f"No source has this model. {summary}")
        raise DownloadError(f"Could not download the model from any source. {summary}")

    def _fetch_all(
        self,
        plan: PullPlan,
        http: GuardedClient,
        remotes: list[RemoteFile],
        progress: ProgressFn | None,
        cancel: threading.Event | None,
    ) -> InstalledModel:
        sizes = [r.size_bytes or w.size_bytes for r, w in zip(remotes, plan.files, strict=True)]
        total = sum(s for s in sizes if s) if all(sizes) else None
        check_disk_space(self.layout.paths.partials, total or 0, str(plan.name))
        meter = Meter(str(plan.name), total, progress)
        downloader = self._downloader(http)
        files: list[ManifestFile] = []
        verified = True
        for remote, wanted in zip(remotes, plan.files, strict=True):
            expected = wanted.sha256 or remote.sha256
            key = (
                f"sha256-{expected}"
                if expected
                else "url-" + hashlib.sha256(remote.url.encode()).hexdigest()[:32]
            )
            digest, size, ok = downloader.fetch(
                remote,
                key,
                expected_sha256=wanted.sha256,
                progress=functools.partial(meter.file, remote.source),
                cancel=cancel,
            )
            meter.base += size
            verified = verified and ok
            files.append(ManifestFile(remote.path_in_repo.rsplit("/", 1)[-1], digest, size))
        if progress is not None:
            progress(PullProgress("verifying", str(plan.name), completed_bytes=meter.base, total_bytes=total))
        source = {"kind": remotes[0].source, "repo": plan.repos[remotes[0].source], "url": remotes[0].url,
                  "reference": plan.reference}  # fmt: skip
        installed = self._register(plan.name, files, source, verified)
        if progress is not None:
            progress(PullProgress("success", str(plan.name), completed_bytes=meter.base, total_bytes=total))
        return installed

    def _downloader(self, http: GuardedClient) -> Downloader:
        return Downloader(
            self.layout,
            http,
            backoff_s=self.retry_backoff_s,
            connections=self.settings.download_connections,
            parallel_min_bytes=self.parallel_min_bytes,
            split_below_bytes_per_s=self.settings.download_split_below_mb_s * 1e6,
            split_probe_s=self.split_probe_s,
        )

    def _fetch_repo(
        self,
        plan: PullPlan,
        candidate: Source,
        http: GuardedClient,
        progress: ProgressFn | None,
        cancel: threading.Event | None,
    ) -> InstalledModel:
        """A Hugging Face-format repository: every file, one progress stream (hf_store.pull_repo)."""
        manifest, skipped = pull_repo(
            self.layout, plan, candidate, http, self._downloader(http), progress, cancel
        )
        if progress is not None:
            progress(PullProgress("success", str(plan.name), completed_bytes=manifest.size_bytes,
                                  total_bytes=manifest.size_bytes))  # fmt: skip
        return self._installed(manifest, skipped)

    def _register(
        self, name: ModelName, files: list[ManifestFile], source: dict[str, str], verified: bool
    ) -> InstalledModel:
        """Validate every part's header, then write the manifest (the model becomes visible)."""
        summary: dict[str, object] = {}
        params = 0
        for item in files:
            blob = self.layout.blob_path(item.digest)
            try:
                info = _validate_named(blob, item.file_name)
            except InvalidModelFileError:
                if item.digest not in self.layout.digests_in_use():
                    blob.unlink(missing_ok=True)
                raise
            if info is not None:
                params += info.parameter_count
                summary = summary or info.summary()
        if summary:
            summary["parameter_count"] = params
        manifest = Manifest(name, tuple(files), source, summary, time.time(), verified)
        self.layout.write(manifest)
        if len(files) > 1:
            self.layout.make_view(manifest)
        return self._installed(manifest)

    # ---- importing -----------------------------------------------------------------------------
    def import_path(self, path: Path, *, name: str | None = None, link: bool = False) -> InstalledModel:
        """A GGUF file, or a Hugging Face-format folder (config.json + safetensors)."""
        try:
            is_dir = Path(path).expanduser().is_dir()
        except OSError:  # e.g. a name too long for the filesystem: import_file says there is no such file
            is_dir = False
        return self.import_dir(path, name=name, link=link) if is_dir else (
            self.import_file(path, name=name, link=link))  # fmt: skip

    def import_dir(self, path: Path, *, name: str | None = None, link: bool = False) -> InstalledModel:
        """Register a Hugging Face-format folder: each file hashed into a blob, copied or hard-linked."""
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise UserInputError(f"There is no folder at {folder}.")
        local = parse_model_name(name) if name is not None else ModelName(
            parse_model_name(folder.resolve().name.lower()[:120]).name)  # fmt: skip
        manifest, skipped = import_folder(self.layout, folder, local, link, self._ingest)
        return self._installed(manifest, skipped)

    def import_file(self, path: Path, *, name: str | None = None, link: bool = False) -> InstalledModel:
        """Register a local GGUF (all parts of a split one): hashed, validated, copied or hard-linked."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise UserInputError(f"There is no file at {path}.")
        parts = split_parts(path.name)
        paths = [path.with_name(p) for p in parts] if parts else [path]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise UserInputError(
                f"{path.name} is part of a split GGUF, but {', '.join(missing)} is missing next to it."
            )
        for part in paths:
            check_model_file(part)  # refuses pickles and malformed headers before anything is copied
        stem = paths[0].name
        stem = stem[: -len("-00001-of-00001.gguf")] if parts else stem.rsplit(".", 1)[0]
        local = (
            parse_model_name(name)
            if name is not None
            else ModelName(parse_model_name(stem.lower()[:120]).name)
        )
        if not link:
            check_disk_space(self.layout.paths.blobs, sum(p.stat().st_size for p in paths), str(local))
        files = [ManifestFile(p.name, *self._ingest(p, link)) for p in paths]
        return self._register(
            local, files, {"kind": "import", "path": str(paths[0].resolve()), "linked": str(link)}, True
        )

    def _ingest(self, path: Path, link: bool) -> tuple[str, int]:
        tmp = self.layout.paths.partials / f"import-{os.getpid()}-{threading.get_ident()}.tmp"
        hasher = hashlib.sha256()
        try:
            if link:
                try:
                    os.link(path, tmp)
                except OSError as exc:
                    raise UserInputError(
                        f"Cannot hard-link {path} into the store ({exc.strerror}); it must be on the same "
                        "disk as BENDI_HOME. Import without --link to copy it."
                    ) from exc
                with open(tmp, "rb") as handle:
                    while block := handle.read(8 * 1024 * 1024):
                        hasher.update(block)
            else:
                with open(path, "rb") as src, open(tmp, "wb") as dst:
                    while block := src.read(8 * 1024 * 1024):
                        hasher.update(block)
                        dst.write(block)
                    dst.flush()
                    os.fsync(dst.fileno())
            digest = f"sha256-{hasher.hexdigest()}"
            blob = self.layout.blob_path(digest)
            size = tmp.stat().st_size
            if blob.exists():
                tmp.unlink()
            else:
                os.replace(tmp, blob)
            return digest, size
        except OSError as exc:
            raise BendiError(f"Importing {path} failed: {exc.strerror or exc}.") from exc
        finally:
            tmp.unlink(missing_ok=True)


def _validate_named(blob: Path, file_name: str) -> GgufInfo | None:
    """Validate a blob by its published file name (blobs themselves have no extension)."""
    if file_name.lower().endswith(".gguf"):
        return read_gguf(blob)
    if file_name.lower().endswith(".safetensors"):
        check_safetensors(blob)
        return None
    raise InvalidModelFileError(f"{file_name} is not a model format bendi accepts.")
