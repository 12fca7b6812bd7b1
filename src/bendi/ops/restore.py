"""`bendi backup restore` and `verify`: check an archive, unpack it beside the data directory, check the
unpacked copy, then swap it in, keeping what it replaces.

Nothing in the data directory changes until the whole archive has been unpacked into a sibling
folder, every file matched its recorded SHA-256, every database passed `PRAGMA integrity_check` and
the audit log's hash chain verified. Only then is the old directory renamed aside (to
`<home>.before-restore-<time>`) and the new one renamed into its place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bendi.access.audit import AuditLog
from bendi.core.errors import UserInputError
from bendi.core.paths import DataPaths
from bendi.ops.backup_archive import (
    ArchiveEntry,
    BackupArchiveError,
    CheckedArchive,
    extract_verified,
    open_checked,
)
from bendi.ops.versions import CURRENT_VERSIONS, KB_INDEX_FILE
from bendi.store.manifest import Manifest


class RestoreRefusedError(UserInputError):
    code = "restore_refused"


@dataclass
class RestoreResult:
    home: Path
    files: int
    data_bytes: int
    made_by: str  # "bendi 0.1.0, 2026-12-06T04:00:00Z, from /srv/bendi"
    replaced: Path | None = None  # where the previous contents were moved
    reused_blobs: int = 0
    missing_models: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class VerifyResult:
    files: int
    data_bytes: int
    databases: int
    audit: str  # the audit chain's verdict, or "no audit log"
    made_by: str


def verify_backup(archive: Path) -> VerifyResult:
    """Unpack into a temporary folder and run every check a restore runs; nothing else is touched."""
    tar, checked = open_checked(archive)
    with tar, tempfile.TemporaryDirectory(prefix="bendi-verify-") as tmp:
        _refuse_newer(checked)
        root = Path(tmp) / "data"
        root.mkdir()
        extract_verified(tar, checked, root, keep=_checked_by_opening)
        databases, audit = check_data(root, checked)
    return VerifyResult(
        len(checked.entries), checked.total_bytes, databases, audit, _made_by(checked.manifest)
    )


def _checked_by_opening(entry: ArchiveEntry) -> bool:
    """What verify writes out: databases, the audit head and model manifests; the rest is only hashed."""
    return (
        entry.kind == "database" or entry.rel.endswith(".head") or entry.rel.startswith("models/manifests/")
    )


def restore_backup(archive: Path, home: Path, *, force: bool = False) -> RestoreResult:
    started = time.monotonic()
    home = Path(os.path.abspath(home.expanduser()))
    present = _contents(home)
    if present and not force:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise RestoreRefusedError(
            f"The data directory {home} already holds data ({shown}). Restoring replaces it: run again with "
            f"--force, and what is there now is moved to {home.name}.before-restore-<time> beside it (stop "
            "bendi first)."
        )
    tar, checked = open_checked(archive, room_at=home.parent)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    staging = home.parent / f".{home.name}.restore-{stamp}-{os.getpid()}"
    with tar:
        _refuse_newer(checked)
        staging.mkdir(mode=0o700, parents=True)
        try:
            extract_verified(tar, checked, staging)
            check_data(staging, checked)
            _rebase_uploads(staging, str(checked.manifest.get("source_home") or ""), home)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    _give_to_owner(staging, home)
    result = RestoreResult(home, len(checked.entries), checked.total_bytes, _made_by(checked.manifest))
    result.replaced = _swap(home, staging, bool(present), stamp)
    result.reused_blobs, result.missing_models = _link_blobs(home, result.replaced)
    result.seconds = time.monotonic() - started
    return result


def check_data(root: Path, checked: CheckedArchive) -> tuple[int, str]:
    """Every database passes integrity_check, the audit chain verifies, manifests parse. Returns the
    number of databases checked and the audit verdict; raises BackupArchiveError on the first failure."""
    archive = checked.path
    databases = 0
    for path in sorted(root / e.rel for e in checked.entries if e.kind == "database"):
        try:
            db = sqlite3.connect(path)
            try:
                verdict = [row[0] for row in db.execute("PRAGMA integrity_check")]
            finally:
                db.close()
        except sqlite3.Error as exc:
            verdict = [str(exc)]
        if verdict != ["ok"]:
            raise BackupArchiveError(
                f"{archive}: the database {path.relative_to(root)} fails SQLite's integrity check "
                f"({'; '.join(verdict[:3])}); nothing was restored."
            )
        databases += 1
    audit = "no audit log"
    if (root / "audit.sqlite3").is_file():
        with AuditLog(root / "audit.sqlite3") as log:
            chain = log.verify()
        if not chain.ok:
            raise BackupArchiveError(
                f"{archive}: its audit log does not verify ({chain.reason}); nothing was restored."
            )
        audit = chain.reason
    for path in sorted((root / "models" / "manifests").glob("*/*.json")):
        try:
            Manifest.from_json(_json(path))
        except (ValueError, KeyError, TypeError, UserInputError) as exc:
            raise BackupArchiveError(
                f"{archive}: the model manifest {path.relative_to(root)} is damaged ({exc}); nothing was restored."
            ) from exc
    return databases, audit


def _json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _refuse_newer(checked: CheckedArchive) -> None:
    data_format = checked.manifest.get("data_format") or {}
    stores = data_format.get("stores") if isinstance(data_format, dict) else None
    for kind, version in sorted((stores or {}).items()):
        known = CURRENT_VERSIONS.get(str(kind))
        if known is None or not isinstance(version, int) or version > known:
            raise RestoreRefusedError(
                f"{checked.path} holds data written by a newer bendi ({_made_by(checked.manifest)}: {kind} "
                f"format {version}; this bendi knows {known if known is not None else 'no such store'}). "
                "Install that version of bendi or newer to restore it; nothing was written."
            )


def _made_by(manifest: dict[str, Any]) -> str:
    return (f"bendi {manifest.get('bendi_version', '?')}, {manifest.get('created_at', '?')}, "
            f"from {manifest.get('source_home', '?')}")  # fmt: skip


def _contents(home: Path) -> list[str]:
    if not home.exists():
        return []
    if not home.is_dir():
        raise RestoreRefusedError(f"{home} exists and is not a folder; restore into a folder.")
    return sorted(child.name + ("/" if child.is_dir() else "") for child in home.iterdir())


def _rebase_uploads(staging: Path, old_home: str, new_home: Path) -> None:
    """Documents remember their stored upload by absolute path; point those at the restored home."""
    if not old_home or old_home == str(new_home):
        return
    prefix = old_home.rstrip("/") + "/"
    for index in sorted(staging.glob(f"knowledge/*/{KB_INDEX_FILE}")):
        db = sqlite3.connect(index, isolation_level=None)
        try:
            columns = {row[1] for row in db.execute("PRAGMA table_info(documents)")}
            if "stored_path" not in columns:
                continue
            rows = db.execute(
                "SELECT id, stored_path FROM documents WHERE stored_path IS NOT NULL"
            ).fetchall()
            moved = [(str(new_home) + "/" + p[len(prefix) :], i) for i, p in rows if p.startswith(prefix)]
            if moved:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("UPDATE documents SET stored_path = ? WHERE id = ?", moved)
                db.execute("COMMIT")
        finally:
            db.close()


def _give_to_owner(staging: Path, home: Path) -> None:
    """Root restoring a service's data: the files go to the account that owns the data directory (or
    its parent), so the service can still open them."""
    if os.geteuid() != 0:
        return
    owner = (home if home.exists() else home.parent).stat()
    if owner.st_uid == 0:
        return
    for path in [staging, *staging.rglob("*")]:
        os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)


def _swap(home: Path, staging: Path, had_contents: bool, stamp: str) -> Path | None:
    """Put `staging` where `home` is; returns where the old contents went (None if there were none)."""
    if not home.exists() or not had_contents:
        with contextlib.suppress(FileNotFoundError, OSError):
            home.rmdir()  # an empty folder; a mount point stays, and its children are moved below
        if not home.exists():
            os.rename(staging, home)
            return None
        _move_children(staging, home)
        return None
    aside = _free_name(home.parent / f"{home.name}.before-restore-{stamp}")
    try:
        os.rename(home, aside)
    except OSError:  # the data directory is a mount point: move what is in it instead
        aside.mkdir()
        _move_children(home, aside)
        _move_children(staging, home)
        return aside
    os.rename(staging, home)
    return aside


def _move_children(source: Path, target: Path) -> None:
    for child in sorted(source.iterdir()):
        shutil.move(str(child), str(target / child.name))
    source.rmdir()


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _link_blobs(home: Path, replaced: Path | None) -> tuple[int, list[str]]:
    """A backup without models keeps their manifests: take their blobs from the replaced data directory
    (content-addressed, so the same name means the same bytes), by hard link, so both keep them."""
    paths = DataPaths(home)
    paths.blobs.mkdir(parents=True, exist_ok=True)
    reused, missing = 0, []
    for name, digests in _manifest_blobs(paths):
        absent = [d for d in digests if not (paths.blobs / d).is_file()]
        for digest in list(absent):
            old = replaced / "models" / "blobs" / digest if replaced else None
            if old is not None and old.is_file() and not old.is_symlink():
                with contextlib.suppress(OSError):
                    os.link(old, paths.blobs / digest)
                    reused += 1
                    absent.remove(digest)
        if absent:
            missing.append(name)
    return reused, missing


def _manifest_blobs(paths: DataPaths) -> Iterator[tuple[str, list[str]]]:
    for path in sorted(paths.manifests.glob("*/*.json")):
        with contextlib.suppress(ValueError, KeyError, TypeError, UserInputError, OSError):
            manifest = Manifest.from_json(_json(path))
            yield str(manifest.name), [f.digest for f in manifest.files]
