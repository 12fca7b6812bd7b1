"""The backup archive's layout and the checks every archive passes before anything is written from it.

An archive is a tar file (gzip unless its name ends in .tar) holding `bendi-backup.json` (what is
inside, with the SHA-256 and size of every file) and the data under `data/`, as regular files only.
An archive is hostile until proven otherwise: a member that is a link, a device or a directory
trick, a path that is absolute or climbs out with `..`, a name listed twice, a file the manifest
does not list (or lists with another size), or more bytes than the disk has room for is refused
with a sentence, before any file is created.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from bendi.core.errors import UserInputError

MANIFEST_NAME = "bendi-backup.json"
DATA_PREFIX = "data/"
BACKUP_KIND = "bendi-backup"
BACKUP_FORMAT = 1  # the layout of the archive itself
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_MEMBERS = 1_000_000
FREE_SPACE_MARGIN_BYTES = 64 * 1024 * 1024  # left free after a restore, so the system keeps breathing
COPY_CHUNK_BYTES = 1024 * 1024


class BackupArchiveError(UserInputError):
    """An archive that is not a bendi backup, is damaged, or tries something no backup does."""

    code = "invalid_backup"


@dataclass(frozen=True)
class ArchiveEntry:
    """One data file of a backup: where it goes (relative to the data directory) and what it must hash to."""

    rel: str  # relative POSIX path under the data directory
    sha256: str
    size_bytes: int
    kind: str  # "database", "file" or "blob"


@dataclass(frozen=True)
class CheckedArchive:
    path: Path
    manifest: dict[str, Any]
    entries: tuple[ArchiveEntry, ...]  # in archive order
    members: dict[str, tarfile.TarInfo]  # rel -> member

    @property
    def total_bytes(self) -> int:
        return sum(e.size_bytes for e in self.entries)


def member_name(rel: str) -> str:
    return DATA_PREFIX + rel


def check_rel_path(raw: object, archive: Path) -> str:
    """A relative path safe to create under a fresh directory, or BackupArchiveError."""
    if not isinstance(raw, str) or not raw:
        raise BackupArchiveError(f"{archive} lists a file without a name; it is not a usable bendi backup.")
    if "\x00" in raw or "\\" in raw or any(ord(c) < 32 for c in raw):
        raise BackupArchiveError(
            f"{archive} holds a file name with control characters or backslashes ({raw!r}); refused, nothing written."
        )
    if raw.startswith("/") or PurePosixPath(raw).is_absolute():
        raise BackupArchiveError(f"{archive} holds an absolute path ({raw}); refused, nothing written.")
    parts = raw.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BackupArchiveError(
            f"{archive} holds the path {raw!r}, which climbs out of the data directory or is malformed; "
            "refused, nothing written."
        )
    return raw


def open_checked(archive: Path, *, room_at: Path | None = None) -> tuple[tarfile.TarFile, CheckedArchive]:
    """Open `archive`, read its manifest and check every member against it (nothing is extracted).

    `room_at`: a directory whose file system must have room for the data (restore's target).
    """
    if not archive.is_file():
        raise BackupArchiveError(f"There is no backup file {archive}.")
    try:
        tar = tarfile.open(archive, mode="r:*")  # noqa: SIM115  (returned open; the caller closes it)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupArchiveError(
            f"{archive} is not a readable tar archive ({exc}); it is not a bendi backup."
        ) from exc
    try:
        checked = _check(tar, archive, room_at)
    except BaseException:
        tar.close()
        raise
    return tar, checked


def _check(tar: tarfile.TarFile, archive: Path, room_at: Path | None) -> CheckedArchive:
    members: dict[str, tarfile.TarInfo] = {}
    manifest_member: tarfile.TarInfo | None = None
    room = _Room(room_at) if room_at is not None else None
    try:
        for count, member in enumerate(tar, start=1):
            if count > MAX_MEMBERS:
                raise BackupArchiveError(f"{archive} holds more than {MAX_MEMBERS} members; refused.")
            name = member.name
            if member.isdir():
                check_rel_path(name.rstrip("/"), archive)
                continue  # directories are created as needed; one in the archive says nothing more
            _check_member_type(member, archive)
            if room is not None:  # checked before the reader skips over the member's claimed bytes
                room.take(member, archive)
            if name == MANIFEST_NAME:
                if manifest_member is not None:
                    raise BackupArchiveError(f"{archive} holds two manifests; refused, nothing written.")
                manifest_member = member
                continue
            if not name.startswith(DATA_PREFIX):
                check_rel_path(name, archive)
                raise BackupArchiveError(f"{archive} holds {name}, which no bendi backup contains; refused.")
            rel = check_rel_path(name[len(DATA_PREFIX) :], archive)
            if rel in members:
                raise BackupArchiveError(f"{archive} holds {name} twice; refused, nothing written.")
            members[rel] = member
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupArchiveError(
            f"{archive} is damaged or truncated ({exc}); it cannot be restored."
        ) from exc
    if manifest_member is None:
        raise BackupArchiveError(f"{archive} has no {MANIFEST_NAME}; it is not a bendi backup.")
    manifest = _read_manifest(tar, manifest_member, archive)
    entries = _entries(manifest, archive)
    listed = {e.rel for e in entries}
    for rel in members:
        if rel not in listed:
            raise BackupArchiveError(
                f"{archive} holds data/{rel}, which its manifest does not list; refused."
            )
    ordered = []
    for entry in entries:
        found = members.get(entry.rel)
        if found is None:
            raise BackupArchiveError(
                f"{archive} is incomplete: data/{entry.rel} is listed in its manifest but missing."
            )
        if found.size != entry.size_bytes:
            raise BackupArchiveError(
                f"{archive}: data/{entry.rel} holds {found.size} bytes but the manifest says "
                f"{entry.size_bytes}; refused, nothing written."
            )
        ordered.append((found.offset_data, entry))
    checked = CheckedArchive(
        archive, manifest, tuple(e for _, e in sorted(ordered, key=lambda p: p[0])), members
    )
    return checked


def _check_member_type(member: tarfile.TarInfo, archive: Path) -> None:
    if member.issym() or member.islnk():
        raise BackupArchiveError(
            f"{archive} holds a link ({member.name} -> {member.linkname}); a bendi backup holds only regular "
            "files, so it is refused and nothing is written."
        )
    if not member.isreg() or member.issparse():
        raise BackupArchiveError(
            f"{archive} holds {member.name}, which is not a regular file (a device, pipe or sparse file); "
            "refused, nothing written."
        )


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: Path) -> dict[str, Any]:
    if member.size > MAX_MANIFEST_BYTES:
        raise BackupArchiveError(
            f"{archive}: its manifest is {member.size} bytes (the limit is {MAX_MANIFEST_BYTES}); refused."
        )
    handle = tar.extractfile(member)
    if handle is None:
        raise BackupArchiveError(f"{archive}: its manifest cannot be read.")
    try:
        data = json.loads(handle.read(MAX_MANIFEST_BYTES + 1))
    except (ValueError, OSError, tarfile.TarError, EOFError) as exc:
        raise BackupArchiveError(f"{archive}: its manifest is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict) or data.get("kind") != BACKUP_KIND:
        raise BackupArchiveError(f"{archive} is not a bendi backup (its manifest does not say so).")
    version = data.get("backup_format")
    if not isinstance(version, int) or version > BACKUP_FORMAT:
        raise BackupArchiveError(
            f"{archive} was made by a newer bendi ({data.get('bendi_version', 'unknown')}, archive format "
            f"{version}); this bendi reads archive format {BACKUP_FORMAT}. Restore it with that version or newer."
        )
    return data


def _entries(manifest: dict[str, Any], archive: Path) -> list[ArchiveEntry]:
    files = manifest.get("files")
    if not isinstance(files, list):
        raise BackupArchiveError(f"{archive}: its manifest lists no files.")
    entries, seen = [], set()
    for item in files:
        if not isinstance(item, dict):
            raise BackupArchiveError(f"{archive}: its manifest has a malformed file entry.")
        rel = check_rel_path(item.get("path"), archive)
        digest, size = item.get("sha256"), item.get("size_bytes")
        if not isinstance(digest, str) or len(digest) != 64 or not isinstance(size, int) or size < 0:
            raise BackupArchiveError(f"{archive}: the manifest entry for {rel} has no valid hash or size.")
        if rel in seen:
            raise BackupArchiveError(f"{archive}: its manifest lists {rel} twice; refused.")
        seen.add(rel)
        entries.append(ArchiveEntry(rel, digest.lower(), size, str(item.get("kind", "file"))))
    return entries


class _Room:
    """The free space on the target's file system, and how much of it the members claimed so far."""

    def __init__(self, room_at: Path) -> None:
        probe = room_at
        while not probe.exists():
            probe = probe.parent
        self.probe = probe
        self.free = shutil.disk_usage(probe).free
        self.claimed = 0

    def take(self, member: tarfile.TarInfo, archive: Path) -> None:
        self.claimed += member.size
        if self.claimed + FREE_SPACE_MARGIN_BYTES > self.free:
            raise BackupArchiveError(
                f"{archive}: {member.name} claims {_gb(member.size)}, and the archive so far {_gb(self.claimed)}, "
                f"but {self.probe} has {_gb(self.free)} free; refused, nothing written. Free some space or "
                "restore on a larger disk."
            )


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB"


def extract_verified(
    tar: tarfile.TarFile,
    checked: CheckedArchive,
    dest: Path,
    keep: Callable[[ArchiveEntry], bool] | None = None,
) -> None:
    """Check every data file's size and SHA-256, writing it under `dest` (a fresh directory) unless
    `keep` says it is only to be checked (verify writes only what its checks open)."""
    root = dest.resolve()
    for entry in checked.entries:
        target = dest.joinpath(*entry.rel.split("/"))
        if keep is None or keep(entry):
            target.parent.mkdir(parents=True, exist_ok=True)
            if root not in target.parent.resolve().parents and target.parent.resolve() != root:
                raise BackupArchiveError(
                    f"{checked.path}: {entry.rel} would land outside the data directory."
                )
            # O_EXCL: never follows or overwrites anything; 0600: accounts, keys and conversations are private.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            out: IO[bytes] | io.RawIOBase = open(os.open(target, flags, 0o600), "wb")  # noqa: SIM115
        else:
            out = _Discard()
        with out:
            _copy_checked(tar, checked, entry, out)


class _Discard(io.RawIOBase):
    def write(self, block: Any) -> int:
        return len(block)


def _copy_checked(
    tar: tarfile.TarFile, checked: CheckedArchive, entry: ArchiveEntry, out: IO[bytes] | io.RawIOBase
) -> None:
    source = tar.extractfile(checked.members[entry.rel])
    if source is None:
        raise BackupArchiveError(f"{checked.path}: data/{entry.rel} cannot be read.")
    digest = hashlib.sha256()
    written = 0
    with source:
        while True:
            try:
                block = source.read(COPY_CHUNK_BYTES)
            except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
                raise BackupArchiveError(f"{checked.path}: data/{entry.rel} cannot be read ({exc}).") from exc
            if not block:
                break
            written += len(block)
            if written > entry.size_bytes:
                break
            digest.update(block)
            try:
                out.write(block)
            except OSError as exc:
                raise BackupArchiveError(
                    f"Cannot write {entry.rel} while unpacking {checked.path}: {exc.strerror or exc}. "
                    "Nothing was restored."
                ) from exc
    if written != entry.size_bytes or digest.hexdigest() != entry.sha256:
        raise BackupArchiveError(
            f"{checked.path}: data/{entry.rel} does not match its recorded hash; the backup is damaged "
            "(nothing was restored)."
        )
