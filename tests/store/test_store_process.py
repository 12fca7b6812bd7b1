"""`bendi pull` as a real process: kill -9 and resume, a file-size limit (disk full), the real model end to end."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakehub import FakeHub
from ggufmaker import write_gguf

from bendi.core.errors import DiskFullError
from bendi.core.settings import Settings
from bendi.store.store import Store
from server_process import terminal_signals

BENDI = str(Path(sys.executable).parent / "bendi")
REPO = "acme/Tiny-GGUF"
FILE = "Tiny-Q4_0.gguf"
REF = f"hf:{REPO}/{FILE}"


def _env(hub: FakeHub, home: Path) -> dict[str, str]:
    return dict(os.environ, BENDI_HOME=str(home), BENDI_THREADS="2", **hub.settings_env())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _blob_gets(hub: FakeHub) -> list[str | None]:
    return [rng for method, path, rng in hub.state.requests if method == "GET" and path.startswith("/blobs/")]


def _assert_next_pull_resumes(hub: FakeHub, settings: Settings, source: Path, offset: int) -> None:
    """A pull at full speed asks only for the bytes past `offset` and installs the source's bytes."""
    hub.state.throttle_bytes_per_s = None
    installed = Store(settings).pull(REF)
    assert _blob_gets(hub)[-1] == f"bytes={offset}-"
    assert _sha(installed.path) == _sha(source)


def test_pull_resumes_after_the_downloader_is_killed(hub, hub_settings, bendi_home, tmp_path):
    source = write_gguf(tmp_path / "up" / FILE, 4_000_000, seed=3)
    hub.state.add(REPO, FILE, source)
    hub.state.throttle_bytes_per_s = 2_000_000
    proc = subprocess.Popen([BENDI, "pull", REF], env=_env(hub, bendi_home), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    partials = bendi_home / "models" / "partial"
    seen = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and seen < 600_000:
            seen = sum(p.stat().st_size for p in partials.glob("*.part")) if partials.is_dir() else 0
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    kept = next(partials.glob("*.part")).stat().st_size
    assert 600_000 <= kept < source.stat().st_size
    _assert_next_pull_resumes(hub, hub_settings, source, kept)


def test_ctrl_c_stops_the_pull_and_keeps_a_resumable_partial(hub, hub_settings, bendi_home, tmp_path):
    source = write_gguf(tmp_path / "up" / FILE, 4_000_000, seed=6)
    hub.state.add(REPO, FILE, source)
    hub.state.throttle_bytes_per_s = 2_000_000
    proc = subprocess.Popen([BENDI, "pull", REF], env=_env(hub, bendi_home), preexec_fn=terminal_signals, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    partials = bendi_home / "models" / "partial"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        p.stat().st_size > 300_000 for p in partials.glob("*.part")
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "resume" in err and "Traceback" not in err
    kept = next(partials.glob("*.part")).stat().st_size
    _assert_next_pull_resumes(hub, hub_settings, source, kept)


def test_disk_full_mid_download_is_a_clear_error_and_keeps_the_partial(
    hub, hub_settings, bendi_home, tmp_path
):
    source = write_gguf(tmp_path / "up" / FILE, 3_000_000, seed=4)
    hub.state.add(REPO, FILE, source)
    limit = 1_000_000

    def limit_file_size() -> None:  # like a full disk: writes past `limit` bytes fail (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([BENDI, "pull", REF], env=_env(hub, bendi_home), capture_output=True, text=True,
                          preexec_fn=limit_file_size, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "disk is full" in done.stderr and "resume" in done.stderr
    assert "Traceback" not in done.stderr
    part = next((bendi_home / "models" / "partial").glob("*.part"))
    assert part.stat().st_size == limit
    _assert_next_pull_resumes(hub, hub_settings, source, limit)


def test_too_little_free_space_is_refused_before_downloading(hub, hub_settings, tmp_path, monkeypatch):
    import shutil

    source = write_gguf(tmp_path / "up" / FILE, 3_000_000, seed=5)
    hub.state.add(REPO, FILE, source)
    real = shutil.disk_usage
    monkeypatch.setattr(
        "bendi.store.partial.shutil.disk_usage", lambda p: real(p)._replace(free=10_000_000)
    )  # a disk with 10 MB free: the file fits, the safety margin does not
    with pytest.raises(DiskFullError, match="Not enough disk space"):
        Store(hub_settings).pull(REF)
    assert _blob_gets(hub) == []


def test_real_model_served_by_the_hub_is_pulled_listed_shown_and_chatted_with(hub, bendi_home, smollm2_path):
    repo, name = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct-Q4_1.gguf"
    hub.state.add(repo, name, smollm2_path)
    env = _env(hub, bendi_home)
    pulled = subprocess.run([BENDI, "pull", f"hf:{repo}/{name}"], env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    assert "smollm2-135m-instruct-q4_1:latest" in pulled.stdout and "verified" in pulled.stdout

    listed = subprocess.run([BENDI, "list", "--json"], env=env, capture_output=True, text=True, timeout=60)
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    row = rows["smollm2-135m-instruct-q4_1:latest"]
    assert row["quantization"] == "Q4_1" and row["size_bytes"] == smollm2_path.stat().st_size
    assert 130e6 < row["parameter_count"] < 140e6

    shown = subprocess.run([BENDI, "show", "smollm2-135m-instruct-q4_1", "--json"], env=env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    info = json.loads(shown.stdout)
    assert info["architecture"] == "llama" and info["context_length"] == 8192
    assert info["license"] == "apache-2.0" and "im_start" in info["chat_template"]
    assert info["fit"].startswith(("yes:", "no:"))  # the advisor's verdict for this machine

    ran = subprocess.run(
        [BENDI, "run", "smollm2-135m-instruct-q4_1", "--prompt", "What is the capital of France?",
         "--max-tokens", "12", "--temperature", "0", "--threads", "2", "--ctx", "512"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip()
