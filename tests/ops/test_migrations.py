"""Upgrades: a data directory written by the previous release (a checked-in fixture made with its code)
is backed up and migrated forward when a real `bendi serve` starts on it, and then serves; data
written by a newer bendi is refused with a sentence and left untouched."""

from __future__ import annotations

import json
import sqlite3
import tarfile
from pathlib import Path

import httpx
import pytest
from backup_testing import KB, bendi, search, start_server

from bendi.access.db import NewerDataError
from bendi.conversations import ConversationStore
from bendi.core.paths import DataPaths
from bendi.ops.migrations import MigrationError, prepare_data_dir
from bendi.ops.restore import verify_backup
from bendi.ops.versions import CURRENT_VERSIONS, FORMAT_FILE, read_format

FIXTURES = Path(__file__).parent / "fixtures"
PREVIOUS_RELEASE = FIXTURES / "0.1.0-5d35323-home.tar.gz"


def _unpack(fixture: Path, root: Path) -> Path:
    with tarfile.open(fixture) as tar:
        tar.extractall(root, filter="data")
    return root / "home"


def _columns(db_path: Path, table: str) -> set[str]:
    with sqlite3.connect(db_path) as db:
        return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _contents(home: Path) -> dict[Path, bytes]:
    """Every file's bytes, but SQLite's -wal/-shm side files (reading a WAL database may create them)."""
    return {
        p: p.read_bytes() for p in home.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def _user_version(db_path: Path) -> int:
    with sqlite3.connect(db_path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_previous_release_home_is_backed_up_migrated_and_served(tmp_path: Path) -> None:
    home = _unpack(PREVIOUS_RELEASE, tmp_path)
    paths = DataPaths(home)
    assert not (home / FORMAT_FILE).exists() and "owner" not in _columns(
        paths.conversations_db, "conversations"
    )

    server = start_server(home)
    try:
        client = httpx.Client(base_url=server.base_url, timeout=120)
        hits = search(client, "safety")
        assert hits and hits[0][0] == "通风规定.md" and "瓦斯" in hits[0][1]
        conversations = client.get("/v1/conversations").json()["data"]
        assert [c["title"] for c in conversations] == ["Shift handover"]
        messages = client.get(f"/v1/conversations/{conversations[0]['id']}").json()["messages"]
        assert [m["content"] for m in messages] == ["通风系统检查了吗？", "检查了，风量正常。"]
        assert "tiny-prev:q4" in [m["name"] for m in client.get("/api/tags").json()["models"]]
        assert [kb["name"] for kb in client.get(KB).json()["data"]] == ["safety"]
    finally:
        server.stop()
    assert "Upgraded the data" in server.log()

    recorded = read_format(home)
    assert recorded is not None and recorded.versions == CURRENT_VERSIONS
    assert "owner" in _columns(paths.conversations_db, "conversations")
    assert _user_version(paths.conversations_db) == CURRENT_VERSIONS["conversations"]
    assert _user_version(paths.knowledge / "safety" / "index.sqlite3") == CURRENT_VERSIONS["knowledge-index"]
    manifest = json.loads((paths.manifests / "tiny-prev" / "q4.json").read_text())
    assert manifest["version"] == CURRENT_VERSIONS["manifest"] and manifest["name"] == "tiny-prev"
    # The automatic backup holds the data as the previous release left it, and verifies.
    [backup] = list((home / "backups").iterdir())
    assert backup.name.startswith("before-upgrade-to-") and verify_backup(backup).databases == 2
    restored = tmp_path / "as-it-was"
    bendi("backup", "restore", str(backup), "--home", str(restored)).check_returncode()
    assert "owner" not in _columns(restored / "conversations.sqlite3", "conversations")
    assert not (restored / FORMAT_FILE).exists()


def test_current_data_is_not_migrated_again(tmp_path: Path) -> None:
    home = _unpack(PREVIOUS_RELEASE, tmp_path)
    assert prepare_data_dir(home) is not None
    assert prepare_data_dir(home) is None
    assert len(list((home / "backups").iterdir())) == 1
    # A knowledge base made since the last start has no stamp yet: it is stamped, not migrated.
    fresh = home / "knowledge" / "fresh"
    fresh.mkdir()
    sqlite3.connect(fresh / "index.sqlite3").execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    assert prepare_data_dir(home) is None
    assert _user_version(fresh / "index.sqlite3") == CURRENT_VERSIONS["knowledge-index"]
    assert len(list((home / "backups").iterdir())) == 1


def test_data_from_a_newer_bendi_is_refused_and_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    prepare_data_dir(home)
    ConversationStore(DataPaths(home).conversations_db).create("local", title="keep me")
    recorded = json.loads((home / FORMAT_FILE).read_text())
    recorded["stores"]["conversations"] = 99
    recorded["written_by"] = "bendi 9.0.0"
    (home / FORMAT_FILE).write_text(json.dumps(recorded))
    before = _contents(home)

    refused = bendi("serve", "--port", "9", home=home, timeout_s=120)
    assert refused.returncode == 1
    assert "written by a newer bendi (bendi 9.0.0: conversations format 99" in refused.stderr
    assert "Upgrade bendi, or restore a backup" in refused.stderr
    assert _contents(home) == before

    # A store stamped newer than this bendi knows, with no format.json to say so, is refused too.
    (home / FORMAT_FILE).unlink()
    with sqlite3.connect(DataPaths(home).conversations_db) as db:
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(NewerDataError, match="conversations.sqlite3 was written by a newer bendi"):
        prepare_data_dir(home)
    listed = bendi("kb", "list", home=home)
    assert listed.returncode == 1 and "newer bendi" in listed.stderr
    assert not (home / "backups").exists()


def test_a_failed_step_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    home = _unpack(PREVIOUS_RELEASE, tmp_path)
    conversations = DataPaths(home).conversations_db
    with sqlite3.connect(conversations) as db:  # an index name the step wants, taken by something else
        db.execute("CREATE TABLE conversations_by_owner (x)")
    with pytest.raises(MigrationError, match="conversations format 0 -> 1.*backed up at"):
        prepare_data_dir(home)
    assert "owner" not in _columns(conversations, "conversations") and _user_version(conversations) == 0
    assert not (home / FORMAT_FILE).exists()
