"""Backup and restore on real data directories (real SQLite stores, a real imported model): refusing to
overwrite without --force and keeping what --force replaces, models taken over by hash, hostile and
damaged archives refused with nothing written."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest
from backup_testing import bendi, hostile_archive, member, write_tiny_gguf

from bendi.access.audit import AuditEvent, AuditLog
from bendi.conversations import ConversationStore
from bendi.core.paths import DataPaths
from bendi.core.settings import load_settings
from bendi.ops.backup import BackupError, create_backup
from bendi.ops.backup_archive import BackupArchiveError
from bendi.ops.migrations import prepare_data_dir
from bendi.ops.restore import RestoreRefusedError, restore_backup, verify_backup
from bendi.store.store import Store


def _home(root: Path, title: str, *, model: bool = False) -> Path:
    """A data directory with a conversation, audit records and (optionally) an imported tiny model."""
    home = root / title
    prepare_data_dir(home)
    paths = DataPaths(home).ensure()
    store = ConversationStore(paths.conversations_db)
    conv = store.create("local", title=title)
    store.add_message(conv.id, "local", role="user", content=f"hello from {title}")
    with AuditLog(paths.audit_db) as audit:
        for n in range(3):
            audit.append(AuditEvent(action="test.event", actor="tests", detail={"n": n}))
    if model:
        gguf = write_tiny_gguf(root / f"{title}.gguf", title)
        Store(load_settings(home=home), paths).import_file(gguf, name=f"tiny-{title}:1")
    return home


def test_restore_refuses_to_overwrite_without_force_and_keeps_what_it_replaces(tmp_path: Path) -> None:
    source = _home(tmp_path, "source", model=True)
    archive = create_backup(source, tmp_path / "source.tar.gz").path
    target = _home(tmp_path, "target", model=True)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    with pytest.raises(RestoreRefusedError, match="already holds data .*--force"):
        restore_backup(archive, target)
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before

    refused = bendi("backup", "restore", str(archive), "--home", str(target))
    assert refused.returncode == 1 and "--force" in refused.stderr

    # The source's model blob is gone from disk: a restore without it falls back on the replaced home.
    blob = next((source / "models" / "blobs").iterdir())
    (target / "models" / "blobs" / blob.name).hardlink_to(blob)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    result = restore_backup(archive, target, force=True)
    assert result.replaced is not None and result.replaced.name.startswith("target.before-restore-")
    assert sorted(p.relative_to(result.replaced) for p in result.replaced.rglob("*")) == before
    titles = [c.title for c in ConversationStore(DataPaths(target).conversations_db).search(None)]
    assert titles == ["source"]
    assert result.reused_blobs == 1 and result.missing_models == []
    assert [m.name for m in Store(load_settings(home=target), DataPaths(target)).models()] == [
        "tiny-source:1"
    ]
    with AuditLog(DataPaths(target).audit_db) as audit:
        assert audit.verify().ok


def test_with_models_carries_the_blobs_and_a_fresh_home_needs_no_force(tmp_path: Path) -> None:
    source = _home(tmp_path, "source", model=True)
    without = create_backup(source, tmp_path / "plain.tar")
    with_models = create_backup(source, tmp_path / "full.tar.gz", with_models=True)
    assert without.blobs == 0 and with_models.blobs == 1 and with_models.data_bytes > without.data_bytes
    assert stat.S_IMODE(with_models.path.stat().st_mode) == 0o600  # password hashes, conversations
    service_dir = tmp_path / "fresh"
    service_dir.mkdir()
    if os.geteuid() == 0:  # root restoring for a service account: the files become that account's
        os.chown(service_dir, 4242, 4242)
    result = restore_backup(with_models.path, service_dir / "home")
    assert result.replaced is None and result.missing_models == []
    restored = [result.home, *result.home.rglob("*")]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in restored if p.is_file())
    if os.geteuid() == 0:
        assert {(p.stat().st_uid, p.stat().st_gid) for p in restored} == {(4242, 4242)}
    empty = tmp_path / "empty"
    empty.mkdir()
    partial = restore_backup(without.path, empty)  # an empty folder is not "data" either
    assert partial.missing_models == ["tiny-source:1"]


def test_backup_is_written_outside_the_data_directory(tmp_path: Path) -> None:
    home = _home(tmp_path, "home")
    with pytest.raises(BackupError, match="inside the data directory"):
        create_backup(home, home / "knowledge" / "b.tar.gz")
    with pytest.raises(BackupError, match="does not exist"):
        create_backup(home, tmp_path / "missing" / "b.tar.gz")


def _nothing_written(target: Path) -> None:
    assert not target.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["evil.tar"]


HOSTILE = {
    "traversal": ([member("data/../../escaped.txt", b"x")], "climbs out"),
    "absolute": ([member("/tmp/bendi-absolute.txt", b"x")], "absolute path"),
    "symlink": ([member("data/config.toml", kind=tarfile.SYMTYPE, link="/etc/passwd")], "link"),
    "hardlink": ([member("data/config.toml", kind=tarfile.LNKTYPE, link="/etc/passwd")], "link"),
    "device": ([member("data/dev", kind=tarfile.CHRTYPE)], "not a regular file"),
    "huge": ([member("data/huge.bin", size=10**15)], "claims 1000000.00 GB"),
    "outside data/": ([member("etc/cron.d/x", b"x")], "no bendi backup contains"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_with_nothing_written(tmp_path: Path, case: str) -> None:
    members, message = HOSTILE[case]
    root = tmp_path / "dest"
    root.mkdir()
    archive = hostile_archive(root / "evil.tar", members)
    target = root / "home"
    with pytest.raises(BackupArchiveError, match=message):
        restore_backup(archive, target)
    _nothing_written(target)
    assert not Path("/tmp/bendi-absolute.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_archives_that_disagree_with_their_manifest_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "dest"
    root.mkdir()
    target = root / "home"
    unlisted = hostile_archive(root / "evil.tar", [member("data/a.txt", b"aaa")], listed=[])
    with pytest.raises(BackupArchiveError, match="does not list"):
        restore_backup(unlisted, target)
    wrong_size = hostile_archive(root / "evil.tar", [member("data/a.txt", b"aaa")],
                                 listed=[{"path": "a.txt", "size_bytes": 2, "sha256": "0" * 64}])  # fmt: skip
    with pytest.raises(BackupArchiveError, match="holds 3 bytes but the manifest says 2"):
        restore_backup(wrong_size, target)
    wrong_hash = hostile_archive(root / "evil.tar", [member("data/a.txt", b"aaa")],
                                 listed=[{"path": "a.txt", "size_bytes": 3, "sha256": "0" * 64}])  # fmt: skip
    with pytest.raises(BackupArchiveError, match="does not match its recorded hash"):
        restore_backup(wrong_hash, target)
    _nothing_written(target)
    (root / "evil.tar").write_bytes(b"not a tar at all")
    with pytest.raises(BackupArchiveError, match="not a readable tar archive|no bendi-backup.json"):
        restore_backup(root / "evil.tar", target)
    _nothing_written(target)


def test_verify_finds_a_damaged_database(tmp_path: Path) -> None:
    home = _home(tmp_path, "home")
    archive = create_backup(home, tmp_path / "b.tar").path
    assert verify_backup(archive).databases >= 2
    raw = bytearray(archive.read_bytes())
    at = raw.find(b"hello from home")  # inside conversations.sqlite3's copy: same size, other bytes
    raw[at : at + 5] = b"HELLO"
    archive.write_bytes(bytes(raw))
    with pytest.raises(BackupArchiveError, match="conversations.sqlite3 does not match its recorded hash"):
        verify_backup(archive)
    checked = bendi("backup", "verify", str(archive))
    assert checked.returncode == 1 and "damaged" in checked.stderr


def test_a_damaged_database_with_a_matching_hash_fails_the_integrity_check(tmp_path: Path) -> None:
    home = _home(tmp_path, "home")
    archive = create_backup(home, tmp_path / "b.tar").path
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    listing = json.loads(members.pop("bendi-backup.json"))
    damaged = bytearray(members["data/conversations.sqlite3"])
    damaged[4096 + 8 : 4096 + 200] = b"\xff" * 192  # page 2's b-tree header and cell pointers
    members["data/conversations.sqlite3"] = bytes(damaged)
    for item in listing["files"]:  # the attacker (or the bit rot) keeps the manifest in step
        item["sha256"] = hashlib.sha256(members["data/" + item["path"]]).hexdigest()
    rebuilt = [member(name, data) for name, data in members.items()]
    forged = hostile_archive(tmp_path / "forged.tar", rebuilt, listed=listing["files"])
    with pytest.raises(BackupArchiveError, match="conversations.sqlite3 fails SQLite's integrity check"):
        restore_backup(forged, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_backups_taken_while_the_audit_log_grows_verify(tmp_path: Path) -> None:
    """The audit head file is rewritten in place after every commit; each backup holds a whole one."""
    home = _home(tmp_path, "home")
    stop = threading.Event()

    def append() -> None:
        with AuditLog(DataPaths(home).audit_db) as audit:
            while not stop.is_set():
                audit.append(AuditEvent(action="test.busy", actor="tests"))

    writer = threading.Thread(target=append)
    writer.start()
    try:
        for n in range(6):
            archive = create_backup(home, tmp_path / f"b{n}.tar").path
            assert verify_backup(archive).audit.startswith("All ")
    finally:
        stop.set()
        writer.join()
