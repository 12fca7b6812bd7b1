"""The real downloader against the fake hub: sources, redirects, resume, verification, faults."""

from __future__ import annotations

import hashlib
import random
import threading
from pathlib import Path

import pytest
from fakehub import FakeHub
from ggufmaker import write_gguf

from bendi.core.errors import DownloadError, IntegrityError
from bendi.core.settings import Settings
from bendi.store.hosts import DisallowedHostError
from bendi.store.partial import DownloadCancelled, DownloadInProgressError
from bendi.store.resolve import resolve_model
from bendi.store.sources import RemoteNotFoundError
from bendi.store.store import PullProgress, Store

REPO = "acme/Tiny-GGUF"
FILE = "Tiny-Q4_0.gguf"
REF = f"hf:{REPO}/{FILE}"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def tiny(tmp_path: Path, hub: FakeHub) -> Path:
    path = write_gguf(tmp_path / "upstream" / FILE, 3_000_000, seed=1)
    hub.state.add(REPO, FILE, path)
    return path


def _store(settings: Settings) -> Store:
    return Store(settings, retry_backoff_s=0.01)


def _blob_gets(hub: FakeHub) -> list[str | None]:
    return [rng for method, path, rng in hub.state.requests if method == "GET" and path.startswith("/blobs/")]


def test_pull_from_hugging_face_follows_the_cdn_redirect_and_verifies(hub_settings, hub, tiny):
    seen: list[PullProgress] = []
    installed = _store(hub_settings).pull(REF, progress=seen.append)
    assert installed.name == "tiny-q4_0:latest"
    assert installed.manifest.verified
    assert installed.manifest.files[0].digest == f"sha256-{_sha(tiny)}"
    assert _sha(installed.path) == _sha(tiny)
    assert installed.manifest.gguf["architecture"] == "llama"
    assert _blob_gets(hub) == [None]  # the bytes came from the CDN host
    statuses = [p.status for p in seen]
    assert statuses[0] == "resolving" and statuses[-1] == "success" and "downloading" in statuses
    last = [p for p in seen if p.status == "downloading"][-1]
    assert last.completed_bytes == last.total_bytes == tiny.stat().st_size
    # the engines find it by local name and by the reference it was pulled with
    paths = _store(hub_settings).layout.paths
    assert resolve_model(paths, "tiny-q4_0").path == installed.path
    assert resolve_model(paths, REF).path == installed.path
    assert not list(paths.partials.iterdir())


@pytest.mark.parametrize("source", ["modelscope", "mirror"])
def test_pull_from_modelscope_and_a_plain_mirror(hub_settings, hub, tiny, source):
    ref = f"modelscope:{REPO}/{FILE}" if source == "modelscope" else REF
    installed = _store(hub_settings).pull(ref, source="auto" if source == "modelscope" else source)
    assert installed.manifest.source["kind"] == source
    assert installed.manifest.verified  # ModelScope lists Sha256; the mirror sends the hash as ETag
    assert _sha(installed.path) == _sha(tiny)


def test_auto_falls_back_to_the_next_source_when_one_fails(hub_settings, hub, tiny):
    hub.state.statuses = [500]  # Hugging Face's HEAD fails
    installed = _store(hub_settings).pull(REF)
    assert installed.manifest.source["kind"] == "mirror"
    assert _sha(installed.path) == _sha(tiny)


@pytest.mark.parametrize("seed", range(3))
def test_resume_after_the_server_drops_the_connection_at_random_offsets(hub_settings, hub, tiny, seed):
    rng = random.Random(seed)
    size = tiny.stat().st_size
    drops = [rng.randrange(1, size // 6) for _ in range(5)]
    hub.state.drop_after = list(drops)
    installed = _store(hub_settings).pull(REF)
    assert _sha(installed.path) == _sha(tiny)
    starts = [0] + [sum(drops[: i + 1]) for i in range(len(drops))]
    assert _blob_gets(hub) == [None] + [f"bytes={s}-" for s in starts[1:]]


def test_a_server_that_ignores_range_restarts_cleanly(hub_settings, hub, tiny):
    hub.state.drop_after = [400_000]
    hub.state.ignore_range = True
    installed = _store(hub_settings).pull(REF)
    assert _blob_gets(hub) == [None, "bytes=400000-"]  # asked to resume, got the whole file, started over
    assert _sha(installed.path) == _sha(tiny)


def _cancel_after(bytes_done: int) -> tuple[threading.Event, object]:
    cancel = threading.Event()

    def progress(p: PullProgress) -> None:
        if p.status == "downloading" and p.completed_bytes >= bytes_done:
            cancel.set()

    return cancel, progress


def test_cancel_keeps_the_partial_and_the_next_pull_resumes(hub_settings, hub, tiny):
    hub.state.throttle_bytes_per_s = 20_000_000
    cancel, progress = _cancel_after(500_000)
    with pytest.raises(DownloadCancelled):
        _store(hub_settings).pull(REF, progress=progress, cancel=cancel)  # type: ignore[arg-type]
    part = next(_store(hub_settings).layout.paths.partials.glob("*.part"))
    kept = part.stat().st_size
    assert 500_000 <= kept < tiny.stat().st_size
    hub.state.throttle_bytes_per_s = None
    installed = _store(hub_settings).pull(REF)
    assert _blob_gets(hub)[-1] == f"bytes={kept}-"
    assert _sha(installed.path) == _sha(tiny)


def test_a_changed_file_etag_and_hash_restarts_from_zero(hub_settings, hub, tiny, tmp_path):
    hub.state.throttle_bytes_per_s = 20_000_000
    cancel, progress = _cancel_after(300_000)
    with pytest.raises(DownloadCancelled):
        _store(hub_settings).pull(REF, progress=progress, cancel=cancel)  # type: ignore[arg-type]
    hub.state.throttle_bytes_per_s = None
    changed = write_gguf(tmp_path / "v2" / FILE, 3_000_000, seed=2)  # same name and size, new bytes
    hub.state.add(REPO, FILE, changed)
    installed = _store(hub_settings).pull(REF)
    assert _blob_gets(hub)[-1] is None  # no Range: the old bytes were thrown away
    assert _sha(installed.path) == _sha(changed)
    assert not list(_store(hub_settings).layout.paths.partials.glob("*.part"))


def test_hash_mismatch_discards_the_partial_and_says_want_and_got(hub_settings, hub, tiny):
    bogus = "0" * 64
    hub.state.advertise_sha[FILE] = bogus
    with pytest.raises(IntegrityError) as caught:
        _store(hub_settings).pull(REF, source="huggingface")
    assert f"want sha256 {bogus}, got {_sha(tiny)}" in caught.value.message
    paths = _store(hub_settings).layout.paths
    assert not list(paths.partials.iterdir()) and not list(paths.blobs.iterdir())
    assert _store(hub_settings).models() == []


def test_a_link_that_never_makes_progress_gives_up_and_keeps_the_partial(hub_settings, hub, tiny):
    hub.state.drop_after = [250_000] + [0] * 20
    with pytest.raises(DownloadError, match="keeps failing") as caught:
        _store(hub_settings).pull(REF, source="huggingface")
    assert "250000 bytes are kept" in caught.value.message
    part = next(_store(hub_settings).layout.paths.partials.glob("*.part"))
    assert part.stat().st_size == 250_000
    hub.state.drop_after = []
    assert _sha(_store(hub_settings).pull(REF).path) == _sha(tiny)


def test_missing_file_is_a_clear_not_found(hub_settings, hub, tiny):
    with pytest.raises(RemoteNotFoundError, match="not found"):
        _store(hub_settings).pull(f"hf:{REPO}/Nope.gguf", source="huggingface")


def test_a_redirect_to_a_host_not_on_the_allowlist_is_refused(hub_settings, hub, tiny):
    hub.state.redirect_to = "http://127.0.0.3:9/evil.gguf"
    with pytest.raises(DisallowedHostError, match="127.0.0.3:9") as caught:
        _store(hub_settings).pull(REF, source="huggingface")
    assert "allowed_hosts" in caught.value.message
    assert not any("evil" in path for _, path, _ in hub.state.requests)


def test_split_gguf_is_pulled_as_one_model(hub_settings, hub, tmp_path):
    names = [f"Big-Q2_K-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    for index, name in enumerate(names, start=1):
        part = write_gguf(tmp_path / "split" / name, 400_000, split=(index - 1, 3), seed=index)
        hub.state.add(REPO, f"Big-Q2_K/{name}", part)
    installed = _store(hub_settings).pull(f"hf:{REPO}/Big-Q2_K/{names[1]}")  # any part names the model
    assert installed.name == "big-q2_k:latest"
    assert [f.file_name for f in installed.manifest.files] == names
    assert installed.path.name == names[0]
    for name in names:  # llama.cpp finds parts 2..N beside part 1, by their published names
        link = installed.path.parent / name
        assert _sha(link) == _sha(tmp_path / "split" / name)
    assert installed.manifest.gguf["parameter_count"] == 3 * 100_000


def test_a_second_pull_of_the_same_file_while_one_runs_is_refused(hub_settings, hub, tiny):
    hub.state.throttle_bytes_per_s = 2_000_000
    cancel, started = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    def first() -> None:
        def progress(p: PullProgress) -> None:
            if p.status == "downloading":
                started.set()

        try:
            _store(hub_settings).pull(REF, progress=progress, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread)
            outcome.append(exc)

    runner = threading.Thread(target=first)
    runner.start()
    try:
        assert started.wait(30)
        with pytest.raises(DownloadInProgressError, match="Another bendi process"):
            _store(hub_settings).pull(REF)
    finally:
        cancel.set()
        runner.join(30)
    assert outcome and isinstance(outcome[0], DownloadCancelled)
