"""Bring a data directory forward on start: refuse newer data, back up older data, migrate it, stamp it.

`prepare_data_dir` runs before anything opens a database (Services is built through it). With data
of the current format it only reads versions (and stamps stores created since the last start). With
older data it first writes an automatic backup to BENDI_HOME/backups/, then runs each store's steps
(each SQLite store's in one transaction with its new version stamp, so a crash leaves the old
version or the new, and the next start carries on), then writes format.json. One process at a time
(a lock file): two bendi commands starting together do not both migrate.
"""

from __future__ import annotations

import fcntl
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bendi import __version__
from bendi.access.db import AccessDB
from bendi.core.errors import BendiError, UserInputError
from bendi.core.paths import DataPaths
from bendi.ops.backup import BACKUPS_DIR, BackupResult, create_backup
from bendi.ops.versions import (
    CURRENT_VERSIONS,
    USER_VERSION_KINDS,
    DamagedDataError,
    StoreFile,
    effective_version,
    read_format,
    refuse_newer,
    stamp_user_version,
    store_files,
    write_format,
)
from bendi.store.manifest import Layout, Manifest

log = logging.getLogger(__name__)
LOCK_FILE = ".upgrade.lock"

SqliteStep = Callable[[sqlite3.Connection], None]


def _conversations_v1(db: sqlite3.Connection) -> None:
    """0 -> 1: answer-length limits and owners (a database from before accounts was the local user's)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(conversations)")}
    if not columns:
        return  # no table yet: the store creates it at version 1
    if "max_tokens" not in columns:
        db.execute("ALTER TABLE conversations ADD COLUMN max_tokens INTEGER")
    if "owner" not in columns:
        db.execute("ALTER TABLE conversations ADD COLUMN owner TEXT NOT NULL DEFAULT 'local'")
    db.execute("CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations(owner, updated_at DESC)")


def _kb_index_v1(db: sqlite3.Connection) -> None:
    """0 -> 1: the document columns of tags, stored uploads and change detection."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(documents)")}
    if not columns:
        return
    for name, ddl in (("content_hash", "TEXT NOT NULL DEFAULT ''"), ("tags", "TEXT NOT NULL DEFAULT '[]'"),
                      ("stored_path", "TEXT")):  # fmt: skip
        if name not in columns:
            db.execute(f"ALTER TABLE documents ADD COLUMN {name} {ddl}")


def _unchanged(db: sqlite3.Connection) -> None:
    """Version 1 is the format these stores were first written in; only the stamp is new."""


# kind -> {from_version: step to from_version + 1}
SQLITE_STEPS: dict[str, dict[int, SqliteStep]] = {
    "conversations": {0: _conversations_v1},
    "knowledge-index": {0: _kb_index_v1},
    "audit": {0: _unchanged},
    "usage": {0: _unchanged},
}


@dataclass(frozen=True)
class Migrated:
    kind: str
    path: Path
    from_version: int
    to_version: int


@dataclass
class UpgradeReport:
    home: Path
    backup: BackupResult
    migrated: list[Migrated] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        kinds = sorted({f"{m.kind} {m.from_version}->{m.to_version}" for m in self.migrated})
        return (f"Upgraded the data in {self.home} to bendi {__version__}'s formats ({', '.join(kinds)}; "
                f"{len(self.migrated)} stores) in {self.seconds:.1f} s. A backup of the data as it was is at "
                f"{self.backup.path}; restore it with `bendi backup restore {self.backup.path} --force` "
                "(with the previous bendi) if you go back.")  # fmt: skip


class MigrationError(BendiError):
    code = "migration_failed"


def prepare_data_dir(home: Path) -> UpgradeReport | None:
    """Make `home` readable by this bendi: refuse newer data, migrate older data after a backup."""
    paths = DataPaths(home)
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home):
        recorded = read_format(home)
        stores = list(store_files(paths))
        refuse_newer(home, recorded, stores)
        behind = [(s, v) for s in stores if (v := effective_version(s, recorded)) < CURRENT_VERSIONS[s.kind]]
        report = _migrate(home, paths, behind) if behind else None
        done = {m.path for m in report.migrated} if report else set()
        for store in stores:  # stores created since the last start carry no stamp yet
            if store.kind in USER_VERSION_KINDS and store.stamp == 0 and store.path not in done:
                stamp_user_version(store.path, CURRENT_VERSIONS[store.kind])
        if recorded is None or recorded.versions != CURRENT_VERSIONS:
            write_format(home, CURRENT_VERSIONS)
    if report is not None:
        log.warning("%s", report.summary())
    return report


def _migrate(home: Path, paths: DataPaths, behind: list[tuple[StoreFile, int]]) -> UpgradeReport:
    started = time.monotonic()
    backups = home / BACKUPS_DIR
    backups.mkdir(exist_ok=True)
    target = backups / f"before-upgrade-to-{__version__}-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz"
    try:
        backup = create_backup(home, target)
    except UserInputError as exc:
        raise MigrationError(
            f"bendi {__version__} must upgrade the data in {home}, but could not back it up first ({exc.message}); "
            "nothing was changed. Free some space or fix the cause, then start again."
        ) from exc
    report = UpgradeReport(home, backup)
    for store, version in behind:
        try:
            _upgrade(paths, store, version)
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise MigrationError(
                f"Upgrading {store.path} ({store.kind} format {version} -> {CURRENT_VERSIONS[store.kind]}) failed: "
                f"{exc}. The data as it was is backed up at {backup.path}; restore it with "
                f"`bendi backup restore {backup.path} --force`, and report this."
            ) from exc
        report.migrated.append(Migrated(store.kind, store.path, version, CURRENT_VERSIONS[store.kind]))
    report.seconds = time.monotonic() - started
    return report


def _upgrade(paths: DataPaths, store: StoreFile, version: int) -> None:
    if store.kind == "access":
        AccessDB(store.path).close()  # the accounts database runs its own steps and refuses newer ones
        return
    if store.kind == "manifest":
        _rewrite_manifest(paths, store.path)
        return
    target = CURRENT_VERSIONS[store.kind]
    steps = SQLITE_STEPS[store.kind]
    db = sqlite3.connect(store.path, timeout=60.0, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            for step_from in range(version, target):
                step = steps.get(step_from)
                if step is None:
                    raise DamagedDataError(
                        f"bendi {__version__} cannot bring {store.path} from {store.kind} format {step_from}; "
                        "upgrade through an intermediate release, or restore a backup."
                    )
                step(db)
            db.execute(f"PRAGMA user_version = {int(target)}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.close()


def _rewrite_manifest(paths: DataPaths, path: Path) -> None:
    """The store reads every older manifest version; writing it back stores the current one."""
    try:
        manifest = Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, UserInputError):
        log.warning("Model manifest %s is damaged; left as it is (`bendi show` reports it).", path)
        return
    Layout(paths).write(manifest)


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    try:
        handle = open(home / LOCK_FILE, "a")  # noqa: SIM115  (closed below; flock needs the handle)
    except OSError as exc:
        raise MigrationError(
            f"Cannot write to the data directory {home} ({exc.strerror or exc}); run bendi as the user "
            "that owns it, or point BENDI_HOME at a directory you may write."
        ) from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
