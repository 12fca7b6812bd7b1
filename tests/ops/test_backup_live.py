"""`bendi backup create` against a real team-mode `bendi serve` that keeps taking uploads and chat messages,
then `bendi backup restore` into a fresh data directory and a real server on it answering the same."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import httpx
from backup_testing import KB, SAFETY_DOCS, bendi, init_team_home, search, start_server, wait_indexed


class _Writer(threading.Thread):
    """Uploads a small document and appends a chat message, over and over, timing each round."""

    def __init__(self, client: httpx.Client, conversation: str) -> None:
        super().__init__(daemon=True)
        self.client, self.conversation = client, conversation
        self.rounds: list[tuple[float, float]] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            started = time.monotonic()
            up = self.client.post(f"{KB}/scratch/documents",
                                  files=[("files", (f"note-{n}.txt", f"Shift note {n}: belts checked.".encode(),
                                                    "text/plain"))])  # fmt: skip
            said = self.client.post(f"/v1/conversations/{self.conversation}/messages",
                                    json={"role": "user", "content": f"message {n}"})  # fmt: skip
            for response in (up, said):
                if response.status_code >= 300:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
            self.rounds.append((started, time.monotonic()))
            time.sleep(0.05)


def test_backup_while_serving_restores_a_home_that_answers_the_same(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    key = init_team_home(live)
    (live / "config.toml").write_text('log_level = "info"\n', encoding="utf-8")
    headers = {"Authorization": f"Bearer {key}"}
    server = start_server(live)
    restored_server = None
    try:
        client = httpx.Client(base_url=server.base_url, headers=headers, timeout=120)
        assert client.post(KB, json={"name": "safety"}).status_code == 201
        assert client.post(KB, json={"name": "scratch"}).status_code == 201
        files = [("files", (name, text.encode(), "text/markdown")) for name, text in SAFETY_DOCS.items()]
        assert client.post(f"{KB}/safety/documents", files=files).status_code == 202
        assert {d["status"] for d in wait_indexed(client, "safety")} == {"indexed"}
        conversation = client.post("/v1/conversations", json={"title": "shift"}).json()["id"]
        expected = search(client, "safety")
        assert expected and expected[0][0] == "通风规定.md"

        writer = _Writer(httpx.Client(base_url=server.base_url, headers=headers, timeout=120), conversation)
        writer.start()
        while len(writer.rounds) < 3:
            time.sleep(0.05)
        archive = tmp_path / "out" / "bendi-backup.tar.gz"
        archive.parent.mkdir()
        began = time.monotonic()
        made = bendi("backup", "create", "-o", str(archive), home=live)
        ended = time.monotonic()
        done_at_end = len(writer.rounds)
        while len(writer.rounds) < done_at_end + 2:
            time.sleep(0.05)
        writer.stop.set()
        writer.join(timeout=60)
        assert made.returncode == 0, made.stderr
        print(made.stdout.strip())
        assert "databases" in made.stdout and "model files left out" in made.stdout
        assert not writer.failures, writer.failures
        # Writes went on while the backup ran: some round overlapped it, and none failed.
        assert any(start < ended and end > began for start, end in writer.rounds), (
            writer.rounds,
            began,
            ended,
        )

        listing = json.loads(_manifest(archive))
        paths = {f["path"] for f in listing["files"]}
        assert {"access.sqlite3", "audit.sqlite3", "audit.head", "conversations.sqlite3", "config.toml",
                "format.json", "knowledge/safety/index.sqlite3"} <= paths  # fmt: skip
        assert not any(p.startswith(("cache/", "logs/")) or p.endswith(("-wal", "-shm")) for p in paths)

        verified = bendi("backup", "verify", str(archive))
        assert verified.returncode == 0 and "audit log: All" in verified.stdout, (
            verified.stdout + verified.stderr
        )

        restored = tmp_path / "restored"
        put_back = bendi("backup", "restore", str(archive), "--home", str(restored))
        assert put_back.returncode == 0 and "audit chain verified" in put_back.stdout, (
            put_back.stdout + put_back.stderr
        )
        audit = bendi("admin", "audit", "verify", home=restored)
        assert audit.returncode == 0 and "hash chain verified" in audit.stdout, audit.stdout + audit.stderr

        restored_server = start_server(restored)
        again = httpx.Client(
            base_url=restored_server.base_url, headers=headers, timeout=120
        )  # same key works
        found = search(again, "safety")
        assert found == expected, (found, expected)
        live_messages = [
            m["content"] for m in client.get(f"/v1/conversations/{conversation}").json()["messages"]
        ]
        kept = [m["content"] for m in again.get(f"/v1/conversations/{conversation}").json()["messages"]]
        assert 3 <= len(kept) <= len(live_messages) and kept == live_messages[: len(kept)], (
            kept,
            live_messages,
        )
        live_notes = {d["file"] for d in client.get(f"{KB}/scratch/documents").json()["data"]}
        kept_notes = {d["file"] for d in again.get(f"{KB}/scratch/documents").json()["data"]}
        assert len(kept_notes) >= 3 and kept_notes <= live_notes, (kept_notes, live_notes)
        # Stored uploads point into the restored home, not the live one.
        with sqlite3.connect(restored / "knowledge" / "scratch" / "index.sqlite3") as db:
            stored = [row[0] for row in db.execute("SELECT stored_path FROM documents")]
        assert stored and all(s.startswith(str(restored) + "/") and Path(s).is_file() for s in stored), (
            stored,
            made.stdout,
        )
    finally:
        server.stop()
        if restored_server is not None:
            restored_server.stop()


def _manifest(archive: Path) -> bytes:
    import tarfile

    with tarfile.open(archive) as tar:
        handle = tar.extractfile("bendi-backup.json")
        assert handle is not None
        return handle.read()
