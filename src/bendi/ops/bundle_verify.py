"""`bendi bundle verify`: check an archive (or its unpacked folder) file by file before it is carried in.

Reads the archive as a stream and extracts nothing. A member that is not a plain file or folder (symlink,
hard link, device), a path that climbs out ('..', absolute), set-uid bits, a file missing, damaged or not
listed in SHA256SUMS: each is named, and the bundle is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bendi.ops.bundle_layout import (
    MANIFEST_NAME,
    SUMS_NAME,
    TOP_DIR,
    BundleError,
    BundleManifest,
    HashingReader,
    check_member_path,
    parse_sums,
)

_MAX_META_BYTES = 16 * 1024 * 1024  # bundle.json and SHA256SUMS are small; a huge one is hostile


@dataclass(frozen=True)
class VerifyReport:
    manifest: BundleManifest | None
    problems: tuple[str, ...]
    files_checked: int
    archive_sha256: str | None  # of the .tar.gz itself, to compare with the .sha256 published beside it

    @property
    def ok(self) -> bool:
        return not self.problems and self.manifest is not None


def verify_bundle(path: Path) -> VerifyReport:
    """Verify a .tar.gz bundle or an unpacked bendi-offline folder."""
    path = path.expanduser()
    if path.is_dir():
        return _verify_folder(path)
    if not path.is_file():
        raise BundleError(f"There is no bundle at {path}.")
    return _verify_archive(path)


def _verify_archive(path: Path) -> VerifyReport:
    found: dict[str, str] = {}
    meta: dict[str, bytes] = {}
    problems: list[str] = []
    with open(path, "rb") as raw:
        reader = HashingReader(raw)
        try:
            with tarfile.open(fileobj=reader, mode="r|gz") as tar:  # type: ignore[call-overload]
                for member in tar:
                    rel = _member_problem(member, problems)
                    if rel is None:
                        continue
                    handle = tar.extractfile(member)
                    assert handle is not None  # a regular file always has a reader
                    found[rel] = _hash_stream(
                        handle, meta if rel in (MANIFEST_NAME, SUMS_NAME) else None, rel
                    )
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            problems.append(f"The archive is truncated or is not a gzip-compressed tar ({exc}).")
        while reader.read(4 * 1024 * 1024):  # hash the padding after the tar's end too
            pass
    manifest = _compare(found, meta, problems)
    digest = reader.sha256.hexdigest()
    sidecar = path.with_name(path.name + ".sha256")  # written by `bundle create` beside the archive
    if sidecar.is_file():
        published = sidecar.read_text(encoding="utf-8", errors="replace").split()[:1]
        if published != [digest]:
            problems.append(
                f"The archive's sha256 {digest} does not match {sidecar.name}; it changed on the way."
            )
    return VerifyReport(manifest, tuple(problems), len(found), digest)


def _member_problem(member: tarfile.TarInfo, problems: list[str]) -> str | None:
    """The member's path inside the bundle if it is a plain, safe file; None (and a problem) otherwise."""
    name = member.name.rstrip("/")
    if name == TOP_DIR and member.isdir():
        return None
    rel = name[len(TOP_DIR) + 1 :] if name.startswith(TOP_DIR + "/") else None
    try:
        if rel is None:
            raise BundleError(f"{member.name!r} lies outside {TOP_DIR}/")
        check_member_path(rel)
    except BundleError:
        problems.append(
            f"Unsafe member {member.name!r}: its path is outside {TOP_DIR}/ or climbs out; refused."
        )
        return None
    if member.mode & 0o7000:
        problems.append(f"Member {name} has set-uid/set-gid/sticky bits; refused.")
        return None
    if member.isdir():
        return None
    if not member.isreg():
        kind = "a symlink" if member.issym() else "a hard link" if member.islnk() else "not a plain file"
        problems.append(f"Member {name} is {kind}; a bundle holds plain files only, so it is refused.")
        return None
    return rel


def _hash_stream(handle: BinaryIO, meta: dict[str, bytes] | None, rel: str) -> str:
    hasher = hashlib.sha256()
    kept = bytearray()
    while block := handle.read(4 * 1024 * 1024):
        hasher.update(block)
        if meta is not None and len(kept) <= _MAX_META_BYTES:
            kept += block
    if meta is not None:
        meta[rel] = bytes(kept)
    return hasher.hexdigest()


def _verify_folder(folder: Path) -> VerifyReport:
    found: dict[str, str] = {}
    meta: dict[str, bytes] = {}
    problems: list[str] = []
    for root, dirs, files in os.walk(folder):  # never follows symlinks to folders
        for name in sorted(dirs + files):
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                problems.append(f"{rel} is a symlink or not a plain file; a bundle holds plain files only.")
                dirs[:] = [d for d in dirs if d != name]
            elif path.is_file():
                with open(path, "rb") as handle:
                    found[rel] = _hash_stream(
                        handle, meta if rel in (MANIFEST_NAME, SUMS_NAME) else None, rel
                    )
    manifest = _compare(found, meta, problems)
    return VerifyReport(manifest, tuple(problems), len(found), None)


def _compare(found: dict[str, str], meta: dict[str, bytes], problems: list[str]) -> BundleManifest | None:
    """Every listed file present and intact, nothing unlisted, bundle.json agreeing with SHA256SUMS."""
    if SUMS_NAME not in meta:
        problems.append(f"{SUMS_NAME} is missing: the bundle cannot be checked, so it is refused.")
        return None
    try:
        sums = parse_sums(meta[SUMS_NAME].decode("utf-8"))
    except (BundleError, UnicodeDecodeError) as exc:
        problems.append(f"{SUMS_NAME} is unreadable ({exc}).")
        return None
    for rel, digest in sorted(sums.items()):
        if rel not in found:
            problems.append(f"{rel} is missing.")
        elif found[rel] != digest:
            problems.append(
                f"{rel} is damaged: its sha256 is {found[rel][:16]}…, {SUMS_NAME} says {digest[:16]}…."
            )
    for rel in sorted(set(found) - set(sums) - {SUMS_NAME}):
        problems.append(f"{rel} is not listed in {SUMS_NAME}; an unexpected file is refused.")
    if MANIFEST_NAME not in meta:
        if MANIFEST_NAME not in sums:  # otherwise "is missing" was said above
            problems.append(f"{MANIFEST_NAME} is missing.")
        return None
    try:
        manifest = BundleManifest.from_json(json.loads(meta[MANIFEST_NAME]))
    except (BundleError, ValueError) as exc:
        problems.append(f"{MANIFEST_NAME} is unreadable ({exc}).")
        return None
    for rel, (digest, _size) in sorted(manifest.files.items()):
        if sums.get(rel) != digest:
            problems.append(f"{MANIFEST_NAME} and {SUMS_NAME} disagree about {rel}.")
    return manifest
