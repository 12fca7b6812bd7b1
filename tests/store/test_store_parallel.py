"""Parallel Range connections: segments, resume per segment, fallback when Range is ignored."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fakehub import FakeHub
from ggufmaker import write_gguf

from bendi.core.errors import IntegrityError
from bendi.core.settings import Settings
from bendi.store.parallel import plan_segments
from bendi.store.partial import DownloadCancelled
from bendi.store.store import PullProgress, Store

REPO, FILE = "acme/Big-GGUF", "Big-Q8_0.gguf"
REF = f"hf:{REPO}/{FILE}"


def _store(settings: Settings, **overrides: object) -> Store:
    """A store that splits from the start (unless overridden), as on a link known to be capped."""
    settings = settings.model_copy(update={"download_split_below_mb_s": math.inf, **overrides})
    return Store(settings, retry_backoff_s=0.01, parallel_min_bytes=1_000_000, split_probe_s=0.3)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _blob_gets(hub: FakeHub) -> list[str | None]:
    return [rng for method, path, rng in hub.state.requests if method == "GET" and path.startswith("/blobs/")]


@pytest.fixture()
def big(tmp_path: Path, hub: FakeHub) -> Path:
    path = write_gguf(tmp_path / "up" / FILE, 4_000_000, seed=11)
    hub.state.add(REPO, FILE, path)
    return path


def test_a_large_file_comes_down_in_segments_and_is_verified(hub_settings, hub, big):
    installed = _store(hub_settings).pull(REF)
    size = big.stat().st_size
    wanted = {f"bytes={s.start}-{s.end - 1}" for s in plan_segments(size, hub_settings.download_connections)}
    assert set(_blob_gets(hub)) == wanted and len(wanted) == 4
    assert _sha(installed.path) == _sha(big) and installed.manifest.verified


@pytest.mark.parametrize("seed", range(2))
def test_segments_resume_after_drops_at_random_offsets(hub_settings, hub, big, seed):
    rng = random.Random(seed)
    hub.state.drop_after = [rng.randrange(1, 400_000) for _ in range(6)]
    installed = _store(hub_settings).pull(REF)
    assert _sha(installed.path) == _sha(big)
    assert len(_blob_gets(hub)) == 4 + 6  # every drop cost one more request, never a restart


def test_a_slow_single_connection_is_split_after_the_probe(hub_settings, hub, big):
    hub.state.throttle_bytes_per_s = 1_500_000  # per connection, like a CDN's cap
    installed = _store(hub_settings, download_split_below_mb_s=10.0).pull(REF)
    gets = _blob_gets(hub)
    assert gets[0] is None and len(gets) == 1 + 4  # the probe's plain GET, then the rest in 4 ranges
    starts = sorted(int(rng.removeprefix("bytes=").split("-")[0]) for rng in gets[1:])
    assert starts[0] > 300_000  # the bytes the probe fetched are kept, not fetched again
    assert _sha(installed.path) == _sha(big) and installed.manifest.verified


def test_a_fast_single_connection_is_not_split(hub_settings, hub, big):
    settings = hub_settings.model_copy(update={"download_split_below_mb_s": 10.0})
    store = Store(settings, parallel_min_bytes=1_000_000, split_probe_s=0.0)  # judged at the first read
    installed = store.pull(REF)
    assert _blob_gets(hub) == [None]
    assert _sha(installed.path) == _sha(big)


def test_a_cancelled_parallel_pull_resumes_each_segment(hub_settings, hub, big):
    hub.state.throttle_bytes_per_s = 4_000_000
    cancel = threading.Event()

    def progress(p: PullProgress) -> None:
        if p.status == "downloading" and p.completed_bytes > 800_000:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        _store(hub_settings).pull(REF, progress=progress, cancel=cancel)
    partials = _store(hub_settings).layout.paths.partials
    recorded = json.loads(next(partials.glob("*.json")).read_text())["segments"]
    assert sum(done for _, _, done in recorded) > 800_000
    hub.state.throttle_bytes_per_s = None
    before = len(hub.state.requests)
    installed = _store(hub_settings).pull(REF)
    resumed = {rng for m, p, rng in hub.state.requests[before:] if m == "GET" and p.startswith("/blobs/")}
    assert resumed == {
        f"bytes={start + done}-{end - 1}" for start, end, done in recorded if start + done < end
    }
    assert _sha(installed.path) == _sha(big)


def test_a_server_ignoring_range_falls_back_to_one_connection(hub_settings, hub, big):
    hub.state.ignore_range = True
    installed = _store(hub_settings).pull(REF)
    assert _sha(installed.path) == _sha(big)
    assert _blob_gets(hub)[-1] is None  # the last request was the plain one-connection download


def test_a_wrong_published_hash_fails_parallel_downloads_too(hub_settings, hub, big):
    hub.state.advertise_sha[FILE] = "1" * 64
    with pytest.raises(IntegrityError, match="want sha256 1111"):
        _store(hub_settings).pull(REF, source="huggingface")
    assert not list(_store(hub_settings).layout.paths.partials.glob("*.part"))


def test_a_file_size_limit_below_the_model_is_a_disk_full_error(hub, bendi_home, big):
    code = (
        "import signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "from bendi.core.settings import load_settings\n"
        "from bendi.store.store import Store\n"
        "try:\n"
        f"    Store(load_settings(), parallel_min_bytes=1_000_000).pull({REF!r})\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = dict(os.environ, BENDI_HOME=str(bendi_home), **hub.settings_env())
    limit = 1_000_000
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )  # fmt: skip
    assert done.stdout.startswith("DiskFullError"), done.stdout + done.stderr
    assert "bendi pull" in done.stdout
