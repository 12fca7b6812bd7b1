"""Hugging Face-format models in the store: pull a whole repository, import a folder, register both.

Every file becomes a content-addressed blob like a GGUF; the manifest (format "hf") lists them under
their published names and the view folder links those names, so an engine loads the folder.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bendi.core.errors import DownloadError, IntegrityError, InvalidModelFileError, UserInputError
from bendi.store.download import Downloader
from bendi.store.formats import check_safetensors
from bendi.store.hf_files import (
    INDEX_FILE,
    MAX_SMALL_FILE_BYTES,
    check_index,
    git_blob_sha1,
    is_weights,
    read_json_object,
    select_files,
    summarize,
    tensor_elements,
)
from bendi.store.hosts import GuardedClient
from bendi.store.manifest import Layout, Manifest, ManifestFile
from bendi.store.partial import check_disk_space
from bendi.store.plan import PullPlan
from bendi.store.progress import Meter, ProgressFn, PullProgress
from bendi.store.reference import ModelName
from bendi.store.sources import HuggingFace, ModelScope, RemoteFile, RepoEntry, Source

Ingest = Callable[[Path, bool], tuple[str, int]]  # (file, hard-link?) -> (digest, size_bytes)


def _listed_remotes(
    source: Source, http: GuardedClient, plan: PullPlan, repo: str
) -> tuple[list[RemoteFile], dict[str, str], tuple[str, ...]]:
    """The files to fetch with their published hashes, git ids of small files, and what was skipped."""
    where = f"{repo} on {source.name}"
    if isinstance(source, (HuggingFace, ModelScope)):
        entries = {e.path: e for e in source.list_repo(http, repo)}
        selection = select_files(list(entries), where)
        chosen: list[RepoEntry] = [entries[p] for p in selection.taken]
        remotes = [source.remote(repo, e) for e in chosen]
        sha1 = {e.path: e.git_sha1 for e in chosen if e.git_sha1 and not e.sha256}
        return remotes, sha1, selection.skipped
    if not plan.files:  # a plain mirror has no listing: only the catalog can say what to fetch
        raise DownloadError(
            f"A plain mirror cannot list {repo}; pull a catalog model (e.g. deepseek-r1:7b --format hf) "
            "or use --source huggingface or modelscope."
        )
    selection = select_files([f.path_in_repo for f in plan.files], where)
    return [source.locate(http, repo, p) for p in selection.taken], {}, selection.skipped


def pull_repo(
    layout: Layout,
    plan: PullPlan,
    source: Source,
    http: GuardedClient,
    downloader: Downloader,
    progress: ProgressFn | None,
    cancel: threading.Event | None,
) -> tuple[Manifest, tuple[str, ...]]:
    """Fetch an HF-format repository from one source: space checked first, small files (and the
    index's shard list) before the shards, every file verified, then registered."""
    repo = plan.repos[source.name]
    remotes, sha1, skipped = _listed_remotes(source, http, plan, repo)
    expected = {f.path_in_repo: f for f in plan.files}
    for remote in remotes:  # the catalog knows a size the hub disagrees with: the repository changed
        wanted = expected.get(remote.path_in_repo)
        if wanted and wanted.size_bytes and remote.size_bytes and wanted.size_bytes != remote.size_bytes:
            raise IntegrityError(
                f"{source.name} lists {remote.path_in_repo} with {remote.size_bytes} bytes; the catalog expects "
                f"{wanted.size_bytes}. The repository changed upstream; refusing it."
            )
    sizes = [r.size_bytes or (expected[r.path_in_repo].size_bytes if r.path_in_repo in expected else None)
             for r in remotes]  # fmt: skip
    total = sum(s or 0 for s in sizes) if all(s is not None for s in sizes) else None
    have = sum(
        s or 0
        for r, s in zip(remotes, sizes, strict=True)
        if r.sha256 and layout.blob_path(f"sha256-{r.sha256}").is_file()
    )
    check_disk_space(layout.paths.partials, sum(s or 0 for s in sizes) - have, str(plan.name))
    meter = Meter(str(plan.name), total, progress)
    files: list[ManifestFile] = []
    verified = True
    shard_names = {r.path_in_repo for r in remotes if is_weights(r.path_in_repo)}
    for remote in remotes:
        if not is_weights(remote.path_in_repo) and (remote.size_bytes or 0) > MAX_SMALL_FILE_BYTES:
            raise InvalidModelFileError(
                f"{remote.path_in_repo} in {repo} is too large for a configuration file."
            )
        wanted = expected.get(remote.path_in_repo)
        want = (wanted.sha256 if wanted else None) or remote.sha256
        key = f"sha256-{want}" if want else "url-" + hashlib.sha256(remote.url.encode()).hexdigest()[:32]
        digest, size, ok = downloader.fetch(
            remote,
            key,
            expected_sha256=wanted.sha256 if wanted else None,
            progress=functools.partial(meter.file, remote.source),
            cancel=cancel,
        )
        blob = layout.blob_path(digest)
        if remote.path_in_repo in sha1:  # small files: Hugging Face publishes their git blob id
            got = git_blob_sha1(blob)
            if got != sha1[remote.path_in_repo]:
                _drop_unused(layout, digest)
                raise IntegrityError(
                    f"{remote.path_in_repo} is corrupt: {source.name} lists git id {sha1[remote.path_in_repo]}, "
                    f"the download has {got}. It was discarded; run `bendi pull` again."
                )
            ok = True
        if remote.path_in_repo == INDEX_FILE:  # before any shard: every shard it names must be listed
            check_index(read_json_object(blob, INDEX_FILE), shard_names, repo)
        meter.base += size
        verified = verified and ok
        files.append(ManifestFile(remote.path_in_repo.rsplit("/", 1)[-1], digest, size))
    if progress is not None:
        progress(PullProgress("verifying", str(plan.name), completed_bytes=meter.base, total_bytes=total))
    source_info = {"kind": source.name, "repo": repo, "url": remotes[0].url, "reference": plan.reference}
    return register(layout, plan.name, files, source_info, verified), skipped


def register(
    layout: Layout, name: ModelName, files: list[ManifestFile], source: dict[str, str], verified: bool
) -> Manifest:
    """Validate config.json, the index and every safetensors header, then write the manifest."""
    by_name = {f.file_name: layout.blob_path(f.digest) for f in files}
    where = str(name)
    params = 0
    for item in files:
        if not is_weights(item.file_name):
            continue
        try:
            params += tensor_elements(check_safetensors(by_name[item.file_name].resolve()))
        except InvalidModelFileError as exc:
            _drop_unused(layout, item.digest)
            raise InvalidModelFileError(f"{item.file_name} of {where}: {exc.message}") from exc
    if "config.json" not in by_name:
        raise InvalidModelFileError(f"{where} has no config.json, so it is not a Hugging Face-format model.")
    config = read_json_object(by_name["config.json"], "config.json")
    if INDEX_FILE in by_name:
        check_index(
            read_json_object(by_name[INDEX_FILE], INDEX_FILE), {f for f in by_name if is_weights(f)}, where
        )
    tokenizer = (
        read_json_object(by_name["tokenizer_config.json"], "tokenizer_config.json")
        if "tokenizer_config.json" in by_name
        else None
    )
    manifest = Manifest(
        name, tuple(files), source, summarize(config, tokenizer, params), time.time(), verified, "hf"
    )
    layout.write(manifest)
    layout.make_view(manifest)
    return manifest


def import_folder(
    layout: Layout, folder: Path, name: ModelName, link: bool, ingest: Ingest
) -> tuple[Manifest, tuple[str, ...]]:
    """Register an HF-format folder on disk: files chosen as for a pull, validated before copying."""
    names = [p.name for p in folder.iterdir() if p.is_file()]
    selection = select_files(names, str(folder))
    for file_name in selection.taken:  # refuse a broken folder before anything is copied
        path = folder / file_name
        if is_weights(file_name):
            check_safetensors(path)
        elif file_name.endswith(".json"):
            read_json_object(path, file_name)
    if INDEX_FILE in selection.taken:
        index = read_json_object(folder / INDEX_FILE, INDEX_FILE)
        check_index(index, {n for n in selection.taken if is_weights(n)}, str(folder))
    if not link:
        check_disk_space(
            layout.paths.blobs, sum((folder / n).stat().st_size for n in selection.taken), str(name)
        )
    try:
        files = [ManifestFile(n, *ingest(folder / n, link)) for n in selection.taken]
    except OSError as exc:
        raise UserInputError(f"Cannot read {folder}: {exc.strerror or exc}.") from exc
    source = {"kind": "import", "path": str(folder.resolve()), "linked": str(link)}
    return register(layout, name, files, source, True), selection.skipped


def _drop_unused(layout: Layout, digest: str) -> None:
    """Delete a blob that failed its checks, unless an installed model uses the same bytes."""
    if digest not in layout.digests_in_use():
        layout.blob_path(digest).unlink(missing_ok=True)
