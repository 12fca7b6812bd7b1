"""Crash safety: `bendi kb add` killed with SIGKILL at random points, then rerun: nothing is lost,
duplicated or half-indexed, and the index stays consistent after every kill."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bendi.knowledge.chunking import chunk_blocks
from bendi.knowledge.parsers import parse_document

NUMERALS = "一二三四五六七八九十"


def _library(folder: Path, files: int) -> dict[str, int]:
    """Small regulation files with distinct text; returns file name -> expected chunk count."""
    folder.mkdir()
    expected = {}
    for f in range(files):
        lines = [f"# 煤矿安全细则第{f}号", "", f"## 第{NUMERALS[f % 10]}章 总则", ""]
        for a in range(12):
            lines += [f"第{NUMERALS[a] if a < 10 else '十' + NUMERALS[a - 10]}条 第{f}号细则要求：井下第{a}区域的瓦斯浓度每班检查{f + a + 2}次，"
                      f"超过{(a + 1) * 0.25:.2f}%必须停止作业并撤出人员。", ""]  # fmt: skip
        path = folder / f"细则{f:02d}.md"
        path.write_text("\n".join(lines), encoding="utf-8")
        expected[path.name] = len(chunk_blocks(parse_document(path).blocks))
    return expected


def _check_consistent(db_path: Path, expected: dict[str, int], *, complete: bool) -> None:
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        chunk_rows = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        fts_rows = db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
        assert chunk_rows == fts_rows  # no chunk without its keyword row, or the reverse
        assert db.execute("SELECT count(*) FROM chunks WHERE length(vector) != 384 * 4").fetchone()[0] == 0
        dupes = db.execute(
            "SELECT count(*) FROM (SELECT doc_id, ordinal FROM chunks GROUP BY 1, 2 HAVING count(*) > 1)"
        )
        assert dupes.fetchone()[0] == 0
        files = db.execute("SELECT file, status, chunks, (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id) "
                           "FROM documents d").fetchall()  # fmt: skip
        assert len({f for f, *_ in files}) == len(files)  # each file once
        for file, status, recorded, actual in files:
            assert recorded == actual
            name = Path(file).name
            # A document either has all its chunks or none: never half-indexed.
            assert actual in (0, expected[name]), (file, status, actual)
            if status in ("indexed", "unchanged"):
                assert actual == expected[name]
        if complete:
            assert sorted(Path(f).name for f, *_ in files) == sorted(expected)
            assert {s for _, s, *_ in files} <= {"indexed", "unchanged"}
    finally:
        db.close()


def test_kill_9_during_ingestion_loses_and_duplicates_nothing(kb_home: Path, tmp_path: Path) -> None:
    # Large enough that ingestion takes seconds even on a fast, idle machine, so the kills land mid-way.
    expected = _library(tmp_path / "lib", files=60)
    bendi = str(Path(sys.executable).parent / "bendi")
    env = dict(os.environ, BENDI_HOME=str(kb_home), BENDI_THREADS="2")
    subprocess.run([bendi, "kb", "create", "crash"], env=env, check=True, capture_output=True, timeout=60)
    db_path = kb_home / "knowledge" / "crash" / "index.sqlite3"
    rng = random.Random(20261122)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen([bendi, "kb", "add", "crash", str(tmp_path / "lib")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.8, 3.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        _check_consistent(db_path, expected, complete=False)
    assert kills >= 1, "ingestion always finished before the kill; the test proved nothing"
    done = subprocess.run([bendi, "kb", "add", "crash", str(tmp_path / "lib")], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    _check_consistent(db_path, expected, complete=True)
    # A rerun of the complete library changes nothing.
    again = subprocess.run([bendi, "kb", "add", "crash", str(tmp_path / "lib")], env=env, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert "60 unchanged" in again.stdout
    _check_consistent(db_path, expected, complete=True)
