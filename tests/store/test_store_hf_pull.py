"""Hugging Face-format pulls against the fake hub: whole repositories, verified, resumable, filtered."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest
from fakehub import FakeHub
from hfmaker import SHARDS, serve_folder, write_hf_model

from bendi.core.errors import DiskFullError, DownloadError, IntegrityError, InvalidModelFileError
from bendi.core.settings import Settings, load_settings
from bendi.engines.engine_select import is_hf_model
from bendi.engines.pool import EnginePool
from bendi.store.hf_store import pull_repo
from bendi.store.hosts import DisallowedHostError, GuardedClient, HostPolicy
from bendi.store.partial import DownloadCancelled
from bendi.store.plan import PullPlan, WantedFile
from bendi.store.reference import ModelName
from bendi.store.resolve import resolve_model
from bendi.store.sources import Mirror
from bendi.store.store import PullProgress, Store

REPO = "acme/Tiny-HF"
REF = f"hf:{REPO}"
WANTED = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
          "model.safetensors.index.json", "README.md", *SHARDS}  # fmt: skip


@pytest.fixture()
def upstream(tmp_path: Path, hub: FakeHub) -> Path:
    folder = write_hf_model(tmp_path / "upstream")
    serve_folder(hub.state, REPO, folder)
    return folder


def _store(settings: Settings) -> Store:
    return Store(settings, retry_backoff_s=0.01)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fetched(hub: FakeHub) -> list[str]:
    """Paths in repo that were GET through the resolve endpoint (HF) or the ModelScope download."""
    out = []
    for method, path, _ in hub.state.requests:
        if method == "GET" and "/resolve/main/" in path:
            out.append(path.split("/resolve/main/", 1)[1])
        elif method == "GET" and "FilePath=" in path:
            out.append(path.split("FilePath=", 1)[1])
    return out


def test_pull_a_repository_takes_config_tokenizer_shards_and_nothing_that_runs_code(
    hub_settings, hub, upstream
):
    seen: list[PullProgress] = []
    installed = _store(hub_settings).pull(REF, progress=seen.append)
    manifest = installed.manifest
    assert installed.name == "tiny-hf:latest" and manifest.format == "hf" and manifest.verified
    assert {f.file_name for f in manifest.files} == WANTED
    fetched = set(_fetched(hub))
    assert fetched == WANTED  # never the pickle, the Python file, or original/
    assert any("pytorch_model.bin" in n for n in installed.notes) and any(".py" in n for n in installed.notes)
    # the view folder holds the published names, each the same bytes as upstream: an engine loads it
    view = installed.path
    assert view.is_dir() and sorted(p.name for p in view.iterdir()) == sorted(WANTED)
    for name in WANTED:
        assert (view / name).read_bytes() == (upstream / name).read_bytes()
    assert manifest.gguf["architecture"] == "qwen2" and manifest.gguf["parameter_count"] == 400_000
    # one progress stream over the whole set: bytes only grow, and end at the total of every file
    downloading = [p for p in seen if p.status == "downloading"]
    total = sum((upstream / n).stat().st_size for n in WANTED)
    assert all(p.total_bytes == total for p in downloading)
    done = [p.completed_bytes for p in downloading]
    assert done == sorted(done) and done[-1] == total
    assert {p.file_name for p in downloading} == WANTED
    assert seen[0].status == "resolving" and seen[-1].status == "success"


def test_a_pulled_hf_model_resolves_as_format_hf_for_the_engines(hub_settings, hub, upstream):
    installed = _store(hub_settings).pull(REF)
    paths = _store(hub_settings).layout.paths
    for name in ("tiny-hf", REF):
        local = resolve_model(paths, name)
        assert local.format == "hf" and local.path == installed.path and local.source == "store"
    pooled = EnginePool(hub_settings, paths).resolve("tiny-hf")
    assert pooled.format == "hf" and pooled.path == installed.path and is_hf_model(pooled)
    assert (pooled.path / "config.json").is_file()


def test_an_interrupted_pull_resumes_finished_files_stay_and_the_shard_continues(hub_settings, hub, upstream):
    cancel = threading.Event()

    shard_bytes = (upstream / SHARDS[1]).stat().st_size

    def stop_midway(p: PullProgress) -> None:  # SHARDS[1] comes last: stop 200 KB into it
        if (
            p.file_name == SHARDS[1]
            and p.total_bytes
            and p.completed_bytes > p.total_bytes - shard_bytes + 200_000
        ):
            cancel.set()

    hub.state.throttle_bytes_per_s = (
        1_000_000  # progress comes every 0.1 s (~100 KB): the cancel lands mid-shard
    )
    with pytest.raises(DownloadCancelled):
        _store(hub_settings).pull(REF, progress=stop_midway, cancel=cancel)
    assert _store(hub_settings).get("tiny-hf") is None  # nothing half-installed
    hub.state.throttle_bytes_per_s = None
    hub.state.requests.clear()
    installed = _store(hub_settings).pull(REF)
    fetched = _fetched(hub)
    assert SHARDS[0] not in fetched  # already a verified blob
    resumed = [rng for method, path, rng in hub.state.requests if method == "GET" and path.startswith("/blobs/")
               and path.endswith(_sha(upstream / SHARDS[1]))]  # fmt: skip
    assert resumed and resumed[0] is not None and resumed[0].startswith("bytes=")
    assert _sha(installed.path / SHARDS[1]) == _sha(upstream / SHARDS[1])


def test_a_shard_with_the_wrong_sha256_is_refused_and_named(hub_settings, hub, upstream):
    hub.state.advertise_sha[SHARDS[1]] = "0" * 64
    with pytest.raises(IntegrityError, match=SHARDS[1]):
        _store(hub_settings).pull(REF, source="huggingface")
    store = _store(hub_settings)
    assert store.get("tiny-hf") is None and not list(store.layout.paths.manifests.rglob("*.json"))


def test_a_small_file_with_the_wrong_git_id_is_refused_and_named(hub_settings, hub, upstream):
    hub.state.advertise_git_oid["tokenizer.json"] = "1" * 40
    with pytest.raises(IntegrityError, match="tokenizer.json"):
        _store(hub_settings).pull(REF, source="huggingface")
    assert SHARDS[0] not in _fetched(hub)  # refused before any shard was fetched


def test_a_repository_of_pickles_is_refused_before_anything_is_fetched(hub_settings, hub, tmp_path):
    folder = tmp_path / "pickles"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    serve_folder(hub.state, "acme/Pickles", folder)
    with pytest.raises(InvalidModelFileError, match=r"no safetensors weights.*pytorch_model\.bin"):
        _store(hub_settings).pull("hf:acme/Pickles")
    assert _fetched(hub) == []


def test_an_index_naming_a_missing_shard_is_refused_before_the_shards(hub_settings, hub, tmp_path):
    folder = write_hf_model(tmp_path / "broken", extras=False)
    (folder / SHARDS[1]).unlink()
    serve_folder(hub.state, "acme/Broken", folder)
    with pytest.raises(InvalidModelFileError, match=f"not there: {SHARDS[1]}"):
        _store(hub_settings).pull("hf:acme/Broken")
    assert SHARDS[0] not in _fetched(hub)


def test_too_little_disk_for_the_whole_set_is_refused_before_downloading(
    hub_settings, hub, upstream, monkeypatch
):
    real = shutil.disk_usage
    total = sum((upstream / n).stat().st_size for n in WANTED)
    monkeypatch.setattr("bendi.store.partial.shutil.disk_usage", lambda p: real(p)._replace(free=total // 2))
    with pytest.raises(DiskFullError, match="tiny-hf"):
        _store(hub_settings).pull(REF, source="huggingface")
    assert _fetched(hub) == []


def test_the_allowlist_is_respected_for_every_file(bendi_home, hub, upstream):
    strict = load_settings(home=bendi_home, threads=2, hf_endpoint=hub.endpoint, allowed_hosts=())
    with pytest.raises(DisallowedHostError, match="127.0.0.2"):  # the CDN a resolve redirects to
        _store(strict).pull(REF, source="huggingface")


def test_the_listing_is_followed_across_pages(hub_settings, hub, upstream):
    hub.state.tree_page_size = 3
    installed = _store(hub_settings).pull(REF, source="huggingface")
    assert {f.file_name for f in installed.manifest.files} == WANTED
    assert sum("/tree/main" in path for _, path, _ in hub.state.requests) >= 4


def test_modelscope_lists_sha256_for_every_file(hub_settings, hub, upstream):
    installed = _store(hub_settings).pull(f"modelscope:{REPO}")
    assert installed.manifest.source["kind"] == "modelscope" and installed.manifest.verified
    assert {f.file_name for f in installed.manifest.files} == WANTED


def test_a_plain_mirror_serves_the_catalog_file_list(hub_settings, hub, upstream):
    files = tuple(WantedFile(n, None, _sha(upstream / n) if n in SHARDS else None) for n in sorted(WANTED))
    plan = PullPlan(ModelName("mirrored"), {"mirror": REPO}, files + (WantedFile("evil.py"),), "x", "hf")
    store = _store(hub_settings)
    with GuardedClient(HostPolicy(hub_settings)) as http:
        manifest, skipped = pull_repo(store.layout, plan, Mirror((hub.mirror,)), http, store._downloader(http),
                                      None, None)  # fmt: skip
        assert {f.file_name for f in manifest.files} == WANTED and any("evil.py" in s for s in skipped)
        empty = PullPlan(ModelName("nothing"), {"mirror": REPO}, (), "x", "hf")
        with pytest.raises(DownloadError, match="cannot list"):
            pull_repo(store.layout, empty, Mirror((hub.mirror,)), http, store._downloader(http), None, None)
