"""`bendi admin` and `bendi kb grant|revoke|access` as an operator scripts them: the real executable on a
fresh data directory, checked against the files the server reads."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bendi.access.control import AccessControl
from bendi.cli.admin_operator import parse_duration
from bendi.core.errors import UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import load_settings

BENDI = str(Path(sys.executable).parent / "bendi")
ADMIN_PASSWORD = "correct horse battery"


def bendi(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([BENDI, *args], env=dict(os.environ, BENDI_HOME=str(home)), input=stdin or "",
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok(home: Path, *args: str, stdin: str | None = None) -> str:
    result = bendi(home, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(home: Path, *args: str, stdin: str | None = None) -> str:
    """A user error: exit 1 and one sentence on stderr."""
    result = bendi(home, *args, stdin=stdin)
    assert result.returncode == 1, (result.stdout, result.stderr)
    message = result.stderr.strip()
    assert message.startswith("bendi: ") and message.endswith("."), message
    return message


def user_row(home: Path, username: str) -> sqlite3.Row | None:
    """A user as the server reads it, straight from the accounts database."""
    db = sqlite3.connect(DataPaths(home).access_db)
    db.row_factory = sqlite3.Row
    try:
        row: sqlite3.Row | None = db.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        return row
    finally:
        db.close()


def test_durations() -> None:
    assert parse_duration("30d") == 30 * 86400 and parse_duration("12h") == 12 * 3600
    assert parse_duration("90m") == 90 * 60 and parse_duration("1.5d") == 1.5 * 86400
    for bad in ("soon", "0d", "-1d", "30", "30s", "d"):
        with pytest.raises(UserInputError, match="duration"):
            parse_duration(bad)


def test_init_users_and_departments(bendi_home: Path) -> None:
    home = bendi_home
    assert "bendi admin init" in refused(home, "admin", "user", "add", "early")  # no administrator yet
    out = ok(home, "admin", "init", "--username", "boss", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    assert "boss" in out and "bendi serve" in out and "http://" in out
    assert ADMIN_PASSWORD not in out
    row = user_row(home, "boss")
    assert row is not None and row["password_hash"].startswith("$argon2id$") and row["role"] == "admin"
    assert row["must_change_password"] == 0  # the operator chose it
    assert "already" in refused(
        home, "admin", "init", "--username", "other", "--password-stdin", stdin="x" * 12
    )

    ok(home, "admin", "department", "add", "通风科")
    departments = json.loads(ok(home, "admin", "department", "list", "--json"))
    assert [d["name"] for d in departments] == ["通风科"]

    out = ok(home, "admin", "user", "add", "alice", "--role", "kb-editor", "--department", "通风科",
             "--display-name", "爱丽丝")  # fmt: skip
    assert re.search(r"One-time password for alice: \S{16}", out) and "only" in out
    ok(home, "admin", "user", "add", "bob", "--password-stdin", stdin="bobs long password")
    found = {u["username"]: u for u in json.loads(ok(home, "admin", "user", "list", "--json"))}
    assert found["alice"]["role"] == "kb-editor" and found["alice"]["display_name"] == "爱丽丝"
    assert found["alice"]["must_change_password"] and not found["bob"]["must_change_password"]
    assert [d["name"] for d in found["alice"]["departments"]] == ["通风科"]
    assert found["bob"]["role"] == "member" and found["bob"]["departments"] == []

    ok(home, "admin", "user", "disable", "bob")
    assert (bob := user_row(home, "bob")) is not None and bob["disabled"] == 1
    ok(home, "admin", "user", "enable", "bob")
    ok(home, "admin", "user", "set", "bob", "--role", "kb-editor", "--tokens-per-day", "500")
    bob = user_row(home, "bob")
    assert (
        bob is not None
        and bob["disabled"] == 0
        and bob["role"] == "kb-editor"
        and bob["tokens_per_day"] == 500
    )
    ok(home, "admin", "user", "passwd", "bob", "--password-stdin", stdin="a new long password")
    assert (after := user_row(home, "bob")) is not None and after["password_hash"] != bob["password_hash"]
    ok(home, "admin", "user", "delete", "bob")
    assert user_row(home, "bob") is None

    assert "Unknown role" in refused(home, "admin", "user", "add", "carol", "--role", "boss")
    assert "too short" in refused(home, "admin", "user", "add", "carol", "--password-stdin", stdin="short")
    assert "no user 'nobody'" in refused(home, "admin", "user", "disable", "nobody")
    assert "last active administrator" in refused(home, "admin", "user", "delete", "boss")
    ok(home, "admin", "department", "delete", "通风科")
    db = sqlite3.connect(DataPaths(home).access_db)
    assert db.execute("SELECT COUNT(*) FROM departments").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM memberships").fetchone()[0] == 0
    db.close()


def test_keys_kb_access_audit_and_usage(bendi_home: Path, tmp_path: Path) -> None:
    home = bendi_home
    ok(home, "admin", "init", "--username", "boss", "--password-stdin", stdin=ADMIN_PASSWORD)
    ok(home, "admin", "user", "add", "carol", "--password-stdin", stdin="carols long password")
    ok(home, "admin", "department", "add", "通风科")

    created = json.loads(ok(home, "admin", "key", "create", "--user", "carol", "--name", "ci", "--expires", "30d",
                            "--json"))  # fmt: skip
    assert created["key"].startswith("bendi_") and created["scope"] == "inference"
    access = AccessControl(load_settings(home=home), DataPaths(home))
    try:
        resolved = access.keys.resolve(created["key"])
        assert resolved is not None and resolved.key.id == created["id"]
        assert resolved.user_id == access.accounts.find_user("carol").id
        listed = json.loads(ok(home, "admin", "key", "list", "--user", "carol", "--json"))
        assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]
        ok(home, "admin", "key", "revoke", created["id"])
        assert access.keys.resolve(created["key"]) is None
    finally:
        access.close()
    assert "admin keys" in refused(home, "admin", "key", "create", "--user", "carol", "--scope", "admin")

    ok(home, "kb", "create", "煤矿安全法规")
    ok(home, "kb", "grant", "煤矿安全法规", "--department", "通风科", "--read")
    ok(home, "kb", "grant", "煤矿安全法规", "--user", "carol", "--write")
    acl = json.loads(ok(home, "kb", "access", "煤矿安全法规", "--json"))
    assert acl["owner"]["username"] == "boss"  # made at the CLI in team mode: the first administrator's
    assert {(g["subject_name"], g["permission"]) for g in acl["grants"]} == {
        ("通风科", "read"),
        ("carol", "write"),
    }
    ok(home, "kb", "revoke", acl["kb"], "--user", "carol")  # by identifier as well as by name
    after = AccessControl(load_settings(home=home), DataPaths(home))
    try:
        assert [g.subject_kind for g in after.grants.grants(acl["kb"])] == ["department"]
    finally:
        after.close()
    assert "no access entry" in refused(home, "kb", "revoke", "煤矿安全法规", "--user", "carol")
    assert "no knowledge base" in refused(home, "kb", "grant", "missing", "--user", "carol", "--read")

    assert re.search(r"intact: \d+ records", ok(home, "admin", "audit", "verify"))
    exported = tmp_path / "audit.jsonl"
    ok(home, "admin", "audit", "export", "--since", "1d", "--json", "-o", str(exported))
    records = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    actions = [r["action"] for r in records]
    assert actions[:3] == ["user.create", "user.create", "department.create"]
    assert {"key.create", "key.revoke", "kb.create", "acl.grant", "acl.revoke"} <= set(actions)
    assert all(r["actor"].startswith("cli:") and r["address"] == "local" for r in records)
    assert "carols long password" not in exported.read_text(encoding="utf-8")
    assert created["key"] not in exported.read_text(encoding="utf-8")
    listed = json.loads(ok(home, "admin", "audit", "list", "--since", "1h", "--action", "acl.*", "--json"))
    assert [r["action"] for r in listed] == ["acl.revoke", "acl.grant", "acl.grant"]

    db = sqlite3.connect(DataPaths(home).audit_db)
    db.execute("""UPDATE audit SET detail = '{"username":"mallory"}' WHERE seq = 2""")
    db.commit()
    db.close()
    broken = bendi(home, "admin", "audit", "verify")
    assert broken.returncode == 1 and "seq 2" in broken.stdout, broken.stdout

    usage = json.loads(ok(home, "admin", "usage", "--since", "7d", "--json", "--by", "user,model"))
    assert usage == []  # nothing served yet
    assert "--by" in refused(home, "admin", "usage", "--by", "colour")
