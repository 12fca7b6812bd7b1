"""`bendi backup create`: a consistent copy of a live data directory in one archive with a hash manifest.

bendi keeps serving meanwhile. Each SQLite database is copied with SQLite's online backup API (one
read transaction: a snapshot as of one instant, while writers go on in WAL mode), then switched to
a single-file journal so the copy needs no -wal beside it. The order keeps references whole:
the audit head file is read before the audit database (the head may then be behind the log, which
the chain check accepts, never ahead of it); databases before the files they point at (uploads are
stored before a document row names them); model manifests before the blobs they list.

Left out: cache/ (rebuilt on demand), logs/, backups/ (the automatic ones), models/partial/
(unfinished downloads), models/views/ (links rebuilt from manifests), temporary and hidden files,
SQLite -wal/-shm side files, and symbolic links (named in the result). Model blobs only with
`--with-models`: they are large, content-addressed, and can be pulled again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bendi import __version__
from bendi.access.audit_chain import read_head, write_head
from bendi.core.errors import UserInputError
from bendi.ops.backup_archive import BACKUP_FORMAT, BACKUP_KIND, MANIFEST_NAME, member_name
from bendi.ops.versions import read_format
from bendi.store.reference import parse_digest

BACKUPS_DIR = "backups"  # BENDI_HOME/backups: automatic backups taken before an upgrade
SKIPPED_DIRS = ("cache", "logs", BACKUPS_DIR, "models/partial", "models/views", "models/blobs")
SQLITE_SUFFIX = ".sqlite3"
SQLITE_MAGIC = b"SQLite format 3\x00"
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")


class BackupError(UserInputError):
    code = "backup_failed"


@dataclass
class BackupResult:
    path: Path
    files: int = 0
    databases: int = 0
    blobs: int = 0
    data_bytes: int = 0  # the data's size before compression
    archive_bytes: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # symbolic links and files that vanished


@dataclass
class _Writer:
    """The tar being written and the manifest entries of what went in."""

    tar: tarfile.TarFile
    result: BackupResult
    entries: list[dict[str, Any]] = field(default_factory=list)

    def add_stream(self, rel: str, source: IO[bytes], size: int, mtime: float, kind: str) -> None:
        info = tarfile.TarInfo(member_name(rel))
        info.size, info.mtime, info.mode = size, int(mtime), 0o600
        reader = _HashingReader(source)
        self.tar.addfile(info, reader)
        if reader.count != size:
            raise BackupError(f"{rel} changed size while it was being copied; run the backup again.")
        self.entries.append({"path": rel, "sha256": reader.sha.hexdigest(), "size_bytes": size, "kind": kind})
        self.result.data_bytes += size
        self.result.files += 1

    def add_bytes(self, rel: str, data: bytes, mtime: float, kind: str = "file") -> None:
        self.add_stream(rel, io.BytesIO(data), len(data), mtime, kind)


class _HashingReader:
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        block = self.raw.read(size)
        self.sha.update(block)
        self.count += len(block)
        return block


def create_backup(
    home: Path, output: Path, *, with_models: bool = False, compresslevel: int = 1
) -> BackupResult:
    """Write a backup of `home` to `output` (written under a temporary name, renamed when complete)."""
    started = time.monotonic()
    home, output = home.resolve(), output.expanduser().resolve()
    if not home.is_dir():
        raise BackupError(f"There is no data directory at {home}; nothing to back up.")
    if (home == output or home in output.parents) and home / BACKUPS_DIR not in output.parents:
        raise BackupError(
            f"{output} is inside the data directory {home}; write the backup elsewhere (ideally another disk)."
        )
    if not output.parent.is_dir():
        raise BackupError(f"The folder {output.parent} does not exist; create it or pick another place.")
    result = BackupResult(output)
    partial = output.with_name(f".{output.name}.part-{os.getpid()}")
    mode = "w" if output.name.endswith(".tar") else "w:gz"
    kwargs: dict[str, Any] = {} if mode == "w" else {"compresslevel": compresslevel}
    staging = Path(tempfile.mkdtemp(prefix=".bendi-backup-", dir=output.parent))
    try:
        # 0600: the archive holds password and key hashes and everyone's conversations.
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as raw:
            with tarfile.open(fileobj=raw, mode=mode, format=tarfile.PAX_FORMAT, **kwargs) as tar:  # type: ignore[call-overload]
                writer = _Writer(tar, result)
                _write_data(home, writer, staging, with_models)
                manifest = _manifest(home, writer, with_models)
                info = tarfile.TarInfo(MANIFEST_NAME)
                info.size, info.mtime, info.mode = len(manifest), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(manifest))
            raw.flush()
            os.fsync(raw.fileno())  # complete on disk before it takes the final name
        os.replace(partial, output)
    except OSError as exc:
        raise BackupError(
            f"Cannot write the backup {output}: {exc.strerror or exc}. Nothing was kept."
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    result.archive_bytes = output.stat().st_size
    result.seconds = time.monotonic() - started
    return result


def _manifest(home: Path, writer: _Writer, with_models: bool) -> bytes:
    recorded = read_format(home)
    body = {
        "kind": BACKUP_KIND,
        "backup_format": BACKUP_FORMAT,
        "bendi_version": __version__,
        "created_s": time.time(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source_home": str(home),
        "with_models": with_models,
        # The data's versions as found (None: written before format versions existed).
        "data_format": None
        if recorded is None
        else {"stores": recorded.versions, "written_by": recorded.written_by},
        "files": writer.entries,
    }
    return json.dumps(body, indent=1, ensure_ascii=False).encode()


def _write_data(home: Path, writer: _Writer, staging: Path, with_models: bool) -> None:
    databases, _ = _survey(home, BackupResult(writer.result.path))
    # Head files first: a head read before its log can only be behind the copied log, never ahead.
    heads = {}
    for db in databases:
        head = db.with_suffix(".head")
        with contextlib.suppress(FileNotFoundError):
            heads[head] = (_head_bytes(head, staging), head.stat().st_mtime)
    for db in databases:
        _add_database(home, db, writer, staging)
    for head, (data, mtime) in heads.items():
        writer.add_bytes(_rel(home, head), data, mtime)
    # Listed only now, after the databases: every file a copied row names was written before the row.
    _, files = _survey(home, writer.result)
    manifests: list[bytes] = []
    for path in files:
        if path in heads:
            continue
        kept = _add_file(home, path, writer)
        if kept is not None and path.parent.parent == home / "models" / "manifests":
            manifests.append(kept)
    if with_models:
        for digest in sorted(_referenced_blobs(manifests)):
            _add_file(home, home / "models" / "blobs" / digest, writer, kind="blob")


def _head_bytes(path: Path, staging: Path) -> bytes:
    """The audit head file as of one moment. It is rewritten in place after every audit commit, so a
    plain read can catch half of a write; read_head retries until its check value holds."""
    head = read_head(path)
    if head is None or head.seq < 0:
        return path.read_bytes()  # unreadable (or gone): kept as found, the restore's check says so
    copy = staging / "audit.head"
    write_head(copy, head)
    return copy.read_bytes()


def _survey(home: Path, result: BackupResult) -> tuple[list[Path], list[Path]]:
    """The SQLite databases and the other regular files to copy, in a stable order."""
    databases: list[Path] = []
    files: list[Path] = []
    skipped_dirs = {home / d for d in SKIPPED_DIRS}
    for root, dirnames, filenames in os.walk(home):
        base = Path(root)
        keep = []
        for name in sorted(dirnames):
            path = base / name
            if path in skipped_dirs:
                continue
            if path.is_symlink():
                result.skipped.append(f"{_rel(home, path)} (a symbolic link)")
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = base / name
            if name.startswith(".") or ".tmp-" in name or name.endswith((".tmp", *SIDE_SUFFIXES)):
                continue  # temporary files, locks, and SQLite's side files (the backup API covers them)
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                result.skipped.append(f"{_rel(home, path)} (a symbolic link)")
            elif stat.S_ISREG(mode):
                (databases if name.endswith(SQLITE_SUFFIX) and _is_sqlite(path) else files).append(path)
    return databases, files


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _add_database(home: Path, path: Path, writer: _Writer, staging: Path) -> None:
    copy = staging / "db.sqlite3"
    copy.unlink(missing_ok=True)
    try:
        source = sqlite3.connect(path, timeout=60.0)  # read only in effect (mode=ro needs the -shm to exist)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)  # all pages in one step: one read transaction, one instant
            target.execute("PRAGMA journal_mode=DELETE")  # the copy stands alone, no -wal beside it
            check = target.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            target.close()
            source.close()
    except sqlite3.Error as exc:
        raise BackupError(
            f"Cannot copy the database {path} ({exc}); it may be damaged. Nothing was kept."
        ) from exc
    if check != "ok":
        raise BackupError(f"The database {path} fails SQLite's check ({check}); repair or restore it first.")
    with open(copy, "rb") as handle:
        writer.add_stream(_rel(home, path), handle, os.fstat(handle.fileno()).st_size, path.stat().st_mtime,
                          "database")  # fmt: skip
    writer.result.databases += 1
    copy.unlink()


def _add_file(home: Path, path: Path, writer: _Writer, kind: str = "file") -> bytes | None:
    """Copy one regular file; returns its bytes when small enough to keep (manifests are parsed)."""
    try:
        handle = open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW))  # noqa: SIM115
    except FileNotFoundError:
        writer.result.skipped.append(f"{_rel(home, path)} (removed while the backup ran)")
        return None
    except OSError as exc:
        raise BackupError(f"Cannot read {path}: {exc.strerror or exc}. Nothing was kept.") from exc
    if kind == "blob":
        writer.result.blobs += 1
    with handle:
        info = os.fstat(handle.fileno())
        if info.st_size <= 1024 * 1024:
            data = handle.read()
            writer.add_bytes(_rel(home, path), data, info.st_mtime, kind)
            return data
        writer.add_stream(_rel(home, path), handle, info.st_size, info.st_mtime, kind)
    return None


def _referenced_blobs(manifests: list[bytes]) -> set[str]:
    """The blob digests the copied manifests name (never a blob a manifest does not vouch for)."""
    digests = set()
    for raw in manifests:
        try:
            for item in json.loads(raw).get("files", []):
                digests.add(parse_digest(item["digest"]))
        except (ValueError, KeyError, TypeError, AttributeError, UserInputError):
            continue  # a damaged manifest: copied as it is, its blobs cannot be named
    return digests


def _rel(home: Path, path: Path) -> str:
    return path.relative_to(home).as_posix()
