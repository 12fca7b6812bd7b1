"""On-disk format versions: which stores a data directory holds, the version each carries, format.json.

Every store carries its own version, where it lives with the data:
  access.sqlite3             meta.schema_version (access/db.py keeps it, and refuses newer data itself)
  audit, usage, conversations, every knowledge/<kb>/index.sqlite3
                             SQLite's `PRAGMA user_version` (stamped here: the store code predates it)
  models/manifests/*/*.json  the manifest's "version" field (store/manifest.py writes it)
BENDI_HOME/format.json sums them up: the version of each kind of store this data directory was last
brought to. A store whose own stamp is 0 (a knowledge base created since the last start, by code that
does not stamp) has the version format.json gives its kind; a data directory without format.json was
written before versions existed (bendi 0.1.0 up to the organization mode) and is version 0 throughout.

When a store's format changes: bump its entry in CURRENT_VERSIONS and add the step to migrations.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bendi import __version__
from bendi.access.db import SCHEMA_VERSION as ACCESS_SCHEMA_VERSION
from bendi.access.db import NewerDataError as NewerDataError  # one error for newer data, everywhere
from bendi.core.errors import BendiError
from bendi.core.paths import DataPaths
from bendi.store.manifest import MANIFEST_VERSION

FORMAT_FILE = "format.json"
FORMAT_FILE_LAYOUT = 1  # the layout of format.json itself
KB_INDEX_FILE = "index.sqlite3"  # knowledge/library.py's INDEX_FILE (ops may not import it lazily here)

# The version of each kind of store this bendi reads and writes.
CURRENT_VERSIONS: dict[str, int] = {
    "access": ACCESS_SCHEMA_VERSION,
    "audit": 1,
    "usage": 1,
    "conversations": 1,
    "knowledge-index": 1,
    "manifest": MANIFEST_VERSION,
}
# Stores versioned by `PRAGMA user_version` (the others keep their own version field).
USER_VERSION_KINDS = frozenset({"audit", "usage", "conversations", "knowledge-index"})


class DamagedDataError(BendiError):
    """A store or format.json cannot be read well enough to tell its version."""

    code = "damaged_data"


@dataclass(frozen=True)
class StoreFile:
    kind: str
    path: Path
    stamp: int  # the version written in the store itself; 0 where none is


@dataclass(frozen=True)
class DataFormat:
    """What format.json says (None when the data directory has no format.json)."""

    versions: dict[str, int]
    written_by: str


def read_format(home: Path) -> DataFormat | None:
    path = home / FORMAT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DamagedDataError(
            f"{path} is unreadable ({exc}). Restore it from a backup, or delete it to have bendi treat "
            "the data as written before format versions existed (it then migrates it after a backup)."
        ) from exc
    try:
        layout = int(data.get("format", 0))
        versions = {str(k): int(v) for k, v in dict(data["stores"]).items()}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DamagedDataError(
            f"{path} does not list the store versions ({exc}); restore it from a backup."
        ) from exc
    written_by = str(data.get("written_by", "an unknown bendi"))
    if layout > FORMAT_FILE_LAYOUT:
        raise NewerDataError(_newer(home, f"format.json layout {layout}", written_by))
    return DataFormat(versions, written_by)


def write_format(home: Path, versions: dict[str, int]) -> None:
    """Replace format.json atomically (a reader sees the old or the new one)."""
    body = {"format": FORMAT_FILE_LAYOUT, "stores": dict(sorted(versions.items())),
            "written_by": f"bendi {__version__}", "updated_at": time.time()}  # fmt: skip
    path = home / FORMAT_FILE
    tmp = path.with_name(f".{FORMAT_FILE}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def current_format_json() -> dict[str, Any]:
    """The versions this bendi writes, as recorded in backups."""
    return {"format": FORMAT_FILE_LAYOUT, "stores": dict(CURRENT_VERSIONS)}


def store_files(paths: DataPaths) -> Iterator[StoreFile]:
    """Every versioned store in the data directory, with the version stamped in it."""
    for kind, path in (("access", paths.access_db), ("audit", paths.audit_db), ("usage", paths.usage_db),
                       ("conversations", paths.conversations_db)):  # fmt: skip
        if path.is_file():
            yield StoreFile(kind, path, _sqlite_stamp(kind, path))
    if paths.knowledge.is_dir():
        for index in sorted(paths.knowledge.glob(f"*/{KB_INDEX_FILE}")):
            yield StoreFile("knowledge-index", index, _sqlite_stamp("knowledge-index", index))
    if paths.manifests.is_dir():
        for manifest in sorted(paths.manifests.glob("*/*.json")):
            yield StoreFile("manifest", manifest, _manifest_stamp(manifest))


def effective_version(store: StoreFile, recorded: DataFormat | None) -> int:
    """The store's own stamp, else what format.json records for its kind (0 without format.json)."""
    if store.stamp:
        return store.stamp
    return recorded.versions.get(store.kind, 0) if recorded else 0


def refuse_newer(home: Path, recorded: DataFormat | None, stores: list[StoreFile]) -> None:
    """Raise NewerDataError naming the first store (or format.json entry) this bendi cannot read."""
    if recorded is not None:
        for kind, version in sorted(recorded.versions.items()):
            known = CURRENT_VERSIONS.get(kind)
            if known is None or version > known:
                what = f"{kind} format {version}" if known is not None else f"a kind of store ({kind})"
                raise NewerDataError(_newer(home, what, recorded.written_by))
    for store in stores:
        if store.stamp > CURRENT_VERSIONS[store.kind]:
            raise NewerDataError(
                f"{store.path} was written by a newer bendi ({store.kind} format {store.stamp}; this bendi "
                f"{__version__} reads up to {CURRENT_VERSIONS[store.kind]}). Upgrade bendi, or restore a "
                "backup made by this version with `bendi backup restore FILE --force`."
            )


def _newer(home: Path, what: str, written_by: str) -> str:
    return (
        f"The data directory {home} was written by a newer bendi ({written_by}: {what}); this is bendi "
        f"{__version__}, which knows {_describe(CURRENT_VERSIONS)}. Upgrade bendi, or restore a backup made "
        "by this version with `bendi backup restore FILE --force`."
    )


def _describe(versions: dict[str, int]) -> str:
    return ", ".join(f"{kind} {version}" for kind, version in sorted(versions.items()))


def stamp_user_version(path: Path, version: int) -> None:
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        db.execute(f"PRAGMA user_version = {int(version)}")
    finally:
        db.close()


def _sqlite_stamp(kind: str, path: Path) -> int:
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            if kind == "access":
                has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
                row = (
                    db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                    if has_meta
                    else None
                )
                return int(row[0]) if row else 0
            return int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()
    except (sqlite3.Error, ValueError) as exc:
        raise DamagedDataError(
            f"Cannot read the format version of {path} ({exc}). It may be damaged or not a bendi database; "
            "restore it from a backup (`bendi backup restore FILE --force`) or move it away."
        ) from exc


def _manifest_stamp(path: Path) -> int:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return int(data.get("version", 0)) if isinstance(data, dict) else 0
    except (OSError, ValueError, TypeError):
        return 0  # a damaged manifest: the store skips it and `bendi show` reports it
