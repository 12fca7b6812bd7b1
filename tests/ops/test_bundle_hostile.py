"""Hostile bundle archives: path traversal, links, devices, set-uid bits, lies in the hash list. Fast, no pip."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from bendi.ops.bundle_layout import BUNDLE_FORMAT_VERSION, BundleError, check_member_path
from bendi.ops.bundle_verify import verify_bundle


def _manifest(files: dict[str, bytes]) -> bytes:
    return json.dumps({
        "format_version": BUNDLE_FORMAT_VERSION, "bendi_version": "0.1.0", "platform": "linux-x86_64",
        "python": "3.11", "min_glibc": None, "requirements": ["bendi==0.1.0"], "models": [],
        "files": {k: {"sha256": hashlib.sha256(v).hexdigest(), "size_bytes": len(v)} for k, v in files.items()},
    }).encode()  # fmt: skip


def _archive(path: Path, files: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> Path:
    """A small bundle whose hash lists are right for `files`, plus whatever hostile members `extra` adds."""
    listed = dict(files)
    listed["bundle.json"] = _manifest(files)
    sums = "".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in sorted(listed.items()))
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [*listed.items(), ("SHA256SUMS", sums.encode())]:
            info = tarfile.TarInfo(f"bendi-offline/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, target, mode
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


GOOD = {"install.sh": b"#!/bin/bash\n", "wheels/a-1.0-py3-none-any.whl": b"wheel bytes"}


def test_a_clean_small_bundle_verifies(tmp_path: Path) -> None:
    report = verify_bundle(_archive(tmp_path / "ok.tar.gz", GOOD))
    assert report.ok, report.problems
    assert report.archive_sha256 == hashlib.sha256((tmp_path / "ok.tar.gz").read_bytes()).hexdigest()
    (tmp_path / "ok.tar.gz.sha256").write_text(f"{report.archive_sha256}  ok.tar.gz\n")
    assert verify_bundle(tmp_path / "ok.tar.gz").ok
    (tmp_path / "ok.tar.gz.sha256").write_text(f"{'0' * 64}  ok.tar.gz\n")
    assert any("ok.tar.gz.sha256" in p for p in verify_bundle(tmp_path / "ok.tar.gz").problems)


@pytest.mark.parametrize(
    ("member", "words"),
    [
        (_member("bendi-offline/../evil.sh"), "climbs out"),
        (_member("/etc/cron.d/evil"), "outside"),
        (_member("elsewhere/evil"), "outside"),
        (_member("bendi-offline/wheels/x.whl", tarfile.SYMTYPE, "/etc/passwd"), "symlink"),
        (_member("bendi-offline/wheels/y.whl", tarfile.LNKTYPE, "/etc/shadow"), "hard link"),
        (_member("bendi-offline/dev0", tarfile.CHRTYPE), "not a plain file"),
        (_member("bendi-offline/bin/su", mode=0o4755), "set-uid"),
    ],
)
def test_hostile_members_are_refused_by_name(tmp_path: Path, member: tarfile.TarInfo, words: str) -> None:
    report = verify_bundle(_archive(tmp_path / "bad.tar.gz", GOOD, [member]))
    assert not report.ok
    assert any(words in p and member.name.rstrip("/").split("/")[-1] in p for p in report.problems), (
        report.problems
    )


def test_a_file_whose_hash_lies_is_named(tmp_path: Path) -> None:
    path = _archive(tmp_path / "lie.tar.gz", GOOD)
    data = path.read_bytes()
    with tarfile.open(path) as src:
        members = [(m, src.extractfile(m).read() if m.isfile() else b"") for m in src]  # type: ignore[union-attr]
    with tarfile.open(path, "w:gz") as dst:
        for m, body in members:
            body = b"other bytes" if m.name.endswith(".whl") else body
            m.size = len(body)
            dst.addfile(m, io.BytesIO(body))
    assert path.read_bytes() != data
    problems = verify_bundle(path).problems
    assert any("a-1.0-py3-none-any.whl is damaged" in p for p in problems)


def test_a_truncated_archive_is_refused(tmp_path: Path) -> None:
    path = _archive(tmp_path / "cut.tar.gz", GOOD)
    path.write_bytes(path.read_bytes()[:-40])
    assert any("truncated" in p for p in verify_bundle(path).problems)


def test_member_paths_are_plain() -> None:
    assert check_member_path("wheels/llama_cpp_python-0.3.36+bendi.a25afd8d66b4-py3-none-linux_x86_64.whl")
    for bad in ("../x", "a/../b", "/abs", "a//b", "a b", "a\nb", ".hidden", ""):
        with pytest.raises(BundleError):
            check_member_path(bad)
