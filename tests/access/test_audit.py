"""The audit log on real SQLite files: the chain holds under concurrent appends and every kind of
tampering done with plain SQL (as an intruder would) is found at the right record."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st

from bendi.access.audit import AuditEvent, AuditLog
from bendi.access.audit_chain import COLUMNS, canonical_json, record_hash
from bendi.access.audit_export import CSV_HEADER, unescape_csv_cell
from bendi.core.errors import BendiError, UserInputError

T0 = 1_750_000_000.0  # a fixed clock: records are one second apart from here
DAY = 86400.0


@pytest.fixture()
def log(tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog(tmp_path / "audit.sqlite3", retention_days=30) as audit_log:
        yield audit_log


def _event(i: int, **changes: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "action": "http.request" if i % 4 else "auth.login",
        "actor": f"user{i % 3}",
        "user_id": f"u{i % 3}",
        "key_id": "k1" if i % 2 else None,
        "address": "10.0.0.7",
        "method": "POST",
        "route": "/v1/chat/completions",
        "status": 200,
        "model": "deepseek-r1:7b",
        "documents": (f"doc{i}.pdf",),
        "prompt_tokens": 10 + i,
        "completion_tokens": 20 + i,
        "detail": {"ms": i},
    }
    values.update(changes)
    return AuditEvent(**values)


def _fill(log: AuditLog, count: int, *, start: float = T0) -> list[int]:
    return [log.append(_event(i), ts=start + i) for i in range(count)]


def _sql(log: AuditLog, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """Tamper the way an intruder would: plain SQL on the file, no bendi code involved."""
    db = sqlite3.connect(log.path)
    with db:
        for sql, args in statements:
            db.execute(sql, args)
    db.close()


def _row(log: AuditLog, seq: int) -> dict[str, Any]:
    db = sqlite3.connect(log.path)
    db.row_factory = sqlite3.Row
    row = db.execute("SELECT * FROM audit WHERE seq = ?", (seq,)).fetchone()
    db.close()
    return dict(row)


def test_appends_number_the_records_and_the_chain_verifies(log: AuditLog) -> None:
    assert log.verify().ok and log.verify().records == 0
    assert _fill(log, 20) == list(range(1, 21))
    verdict = log.verify()
    assert verdict.ok and verdict.records == 20 and verdict.first_bad_seq is None
    assert "20 records are intact" in verdict.reason
    assert json.loads(log.head_path.read_text())["seq"] == 20
    assert log.head_path.name == "audit.head" and log.head_path.parent == log.path.parent


def test_the_chain_holds_under_concurrent_appends_from_threads_and_a_second_writer(log: AuditLog) -> None:
    other = AuditLog(log.path)  # e.g. the CLI writing while the server runs
    seqs: list[int] = []
    seqs_lock = threading.Lock()

    def work(writer: AuditLog, worker: int) -> None:
        for i in range(40):
            seq = writer.append(_event(i, actor=f"thread{worker}"))
            with seqs_lock:
                seqs.append(seq)

    threads = [threading.Thread(target=work, args=(other if n % 3 == 0 else log, n)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()
    assert sorted(seqs) == list(range(1, 241))
    verdict = log.verify()
    assert verdict.ok, verdict.reason
    assert verdict.records == 240


CLI_WRITER = """
import sys
from pathlib import Path
from bendi.access.audit import AuditEvent, AuditLog
with AuditLog(Path(sys.argv[1])) as log:
    for i in range(100):
        log.append(AuditEvent("user.update", actor="cli", detail={"i": i}))
"""


def test_verify_while_others_append_never_reports_a_false_alarm(log: AuditLog) -> None:
    cli = subprocess.Popen([sys.executable, "-c", CLI_WRITER, str(log.path)])  # another process, as the CLI
    other = AuditLog(log.path)

    def work(writer: AuditLog) -> None:
        for i in range(150):
            writer.append(_event(i))

    threads = [threading.Thread(target=work, args=(w,)) for w in (log, other)]
    for thread in threads:
        thread.start()
    verdicts = []
    while any(t.is_alive() for t in threads) or cli.poll() is None:
        verdicts.append(log.verify())
    for thread in threads:
        thread.join()
    assert cli.wait(timeout=60) == 0
    other.close()
    assert all(v.ok for v in verdicts), [v.reason for v in verdicts if not v.ok][:3]
    assert log.verify().records == 400 and log.verify().ok
    assert len(log.query(actor="cli", limit=1000)) == 100


def test_append_many_writes_a_batch_in_order(log: AuditLog) -> None:
    _fill(log, 2)
    assert log.append_many([(_event(i), T0 + 10 + i) for i in range(5)]) == [3, 4, 5, 6, 7]
    assert log.append_many([]) == []
    assert [r.ts for r in log.query(limit=5)] == [T0 + 14, T0 + 13, T0 + 12, T0 + 11, T0 + 10]
    with pytest.raises(UserInputError):
        log.append_many([(_event(0), None), (_event(1), float("inf"))])
    assert log.verify().ok and log.verify().records == 7


def test_an_edited_field_is_found_at_its_record(log: AuditLog) -> None:
    _fill(log, 10)
    _sql(log, ("UPDATE audit SET status = 500 WHERE seq = 5", ()))
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 5 and verdict.records == 10
    assert "Record 5 was changed" in verdict.reason


def test_a_record_deleted_from_the_middle_is_found(log: AuditLog) -> None:
    _fill(log, 10)
    _sql(log, ("DELETE FROM audit WHERE seq = 7", ()))
    verdict = log.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 7)
    assert "missing" in verdict.reason


def test_deleting_the_end_of_the_log_is_found_through_the_head_file(log: AuditLog) -> None:
    _fill(log, 20)
    _sql(log, ("DELETE FROM audit WHERE seq > 15", ()))
    verdict = log.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 16)
    assert "audit.head" in verdict.reason and "16 to 20" in verdict.reason
    # Appending over the deleted seqs must not launder the cut: the head file stays as evidence.
    _fill(log, 5, start=T0 + 100)
    verdict = log.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 20)
    assert "written again" in verdict.reason
    _fill(log, 3, start=T0 + 200)
    assert not log.verify().ok


def test_swapped_records_are_found_at_the_first_of_them(log: AuditLog) -> None:
    _fill(log, 12)
    a, b = _row(log, 4), _row(log, 9)
    columns = [c for c in a if c != "seq"]
    assign = ", ".join(f"{c} = ?" for c in columns)
    _sql(
        log,
        (f"UPDATE audit SET {assign} WHERE seq = 4", tuple(b[c] for c in columns)),
        (f"UPDATE audit SET {assign} WHERE seq = 9", tuple(a[c] for c in columns)),
    )
    verdict = log.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 4)


def test_a_record_moved_to_another_place_is_found(log: AuditLog) -> None:
    _fill(log, 8)
    _sql(log, ("UPDATE audit SET seq = 100 WHERE seq = 3", ()))
    verdict = log.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 3)


def test_a_rewritten_record_with_a_recomputed_hash_is_found(log: AuditLog) -> None:
    _fill(log, 10)
    row = _row(log, 6)
    row["actor"] = "someone-else"  # the intruder knows the hash recipe and recomputes it
    forged = record_hash(row, row["prev_hash"])
    _sql(log, ("UPDATE audit SET actor = ?, hash = ? WHERE seq = 6", (row["actor"], forged)))
    verdict = log.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 6)
    assert "Record 6 was replaced" in verdict.reason


def test_a_record_inserted_in_the_middle_with_a_forged_hash_is_found(log: AuditLog) -> None:
    _fill(log, 8)
    five = _row(log, 5)
    forged = {**_row(log, 6), "seq": 6, "actor": "ghost"}
    forged["prev_hash"] = five["hash"]
    forged["hash"] = record_hash(forged, five["hash"])
    names = [*COLUMNS, "prev_hash", "hash"]
    _sql(
        log,
        ("UPDATE audit SET seq = seq + 1000 WHERE seq > 5", ()),
        ("UPDATE audit SET seq = seq - 999 WHERE seq > 1000", ()),
        (f"INSERT INTO audit ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
         tuple(forged[n] for n in names)),
    )  # fmt: skip
    verdict = log.verify()
    # The forged record 6 chains correctly to 5; the shifted old 6 (now 7) no longer matches its hash.
    assert (verdict.ok, verdict.first_bad_seq) == (False, 7)


def test_a_missing_head_file_is_reported_and_a_lagging_one_is_accepted(log: AuditLog) -> None:
    _fill(log, 5)
    head = log.head_path.read_text()
    _fill(log, 3, start=T0 + 10)
    log.head_path.write_text(head)  # as after a crash between the commit and the head write
    assert log.verify().ok
    _fill(log, 1, start=T0 + 20)
    assert json.loads(log.head_path.read_text())["seq"] == 9
    log.head_path.unlink()
    verdict = log.verify()
    assert not verdict.ok and "audit.head is missing" in verdict.reason
    _fill(log, 1, start=T0 + 30)  # an append does not recreate it: that would hide a cut-off end
    assert not log.head_path.exists() and not log.verify().ok


def test_a_garbled_head_file_is_reported_and_left_alone(log: AuditLog) -> None:
    _fill(log, 3)
    log.head_path.write_text('{"seq": 99, "hash": "x", "check": "forged"}')
    _fill(log, 1, start=T0 + 10)
    verdict = log.verify()
    assert not verdict.ok and "unreadable" in verdict.reason
    assert "forged" in log.head_path.read_text()


def test_a_closed_log_refuses_appends(tmp_path: Path) -> None:
    audit_log = AuditLog(tmp_path / "audit.sqlite3")
    audit_log.close()
    with pytest.raises(BendiError, match="closed"):
        audit_log.append(_event(0))


ESCAPED_CELLS = ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1:A9)", "'quoted"]


def test_export_jsonl_round_trips_and_can_be_checked_outside_bendi(log: AuditLog) -> None:
    _fill(log, 6)
    log.append(_event(6, detail={"question": "合同的违约金是多少？", "部门": "法务"}), ts=T0 + 6)
    out = io.StringIO()
    assert log.export(out, fmt="jsonl") == 7
    lines = out.getvalue().splitlines()
    assert "合同的违约金是多少？" in lines[-1]  # readable, not \\u escapes
    exported = [json.loads(line) for line in lines]
    assert exported == [r.to_json() for r in reversed(log.query())]
    prev = "0" * 64
    for record in exported:  # the export alone is enough to check the chain
        stored = {
            **record,
            "documents": canonical_json(record["documents"]),
            "detail": canonical_json(record["detail"]),
        }
        assert record["prev_hash"] == prev and record_hash(stored, prev) == record["hash"]
        prev = record["hash"]
    since = io.StringIO()
    assert log.export(since, since=T0 + 4, fmt="jsonl") == 3
    with pytest.raises(UserInputError):
        log.export(io.StringIO(), fmt="xml")


def test_export_csv_has_a_header_one_row_per_record_and_defuses_formulas(log: AuditLog) -> None:
    log.append(_event(0, actor=ESCAPED_CELLS[0], route=ESCAPED_CELLS[1], address=ESCAPED_CELLS[2],
                      documents=(ESCAPED_CELLS[3], "b.pdf"), method=ESCAPED_CELLS[4],
                      detail={"note": "=1+1", "文": "中文"}), ts=T0)  # fmt: skip
    _fill(log, 3, start=T0 + 1)
    out = io.StringIO()
    assert log.export(out, fmt="csv") == 4
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_HEADER and len(rows) == 5
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "@")) and not (
                cell.startswith("-") and not _is_number(cell)
            )
    first = dict(zip(CSV_HEADER, rows[1], strict=True))
    assert first["actor"] == "'" + ESCAPED_CELLS[0] and first["documents"] == "'@SUM(A1:A9);b.pdf"
    record = log.query(action="auth.login")[-1]
    assert unescape_csv_cell(first["actor"]) == record.actor
    assert unescape_csv_cell(first["route"]) == record.route
    assert unescape_csv_cell(first["address"]) == record.address
    assert unescape_csv_cell(first["method"]) == record.method
    assert tuple(unescape_csv_cell(first["documents"]).split(";")) == record.documents
    assert json.loads(first["detail"]) == {"note": "=1+1", "文": "中文"}
    assert (int(first["seq"]), float(first["ts"]), int(first["status"])) == (1, T0, 200)
    assert first["key_id"] == "" and first["hash"] == record.hash


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_query_filters_newest_first_with_keyset_pages(log: AuditLog) -> None:
    _fill(log, 30)
    everything = log.query(limit=1000)
    assert [r.seq for r in everything] == list(range(30, 0, -1))
    assert [r.seq for r in log.query(since=T0 + 10, until=T0 + 13)] == [13, 12, 11]
    assert {r.actor for r in log.query(actor="user1")} == {"user1"} and len(log.query(actor="user1")) == 10
    assert {r.action for r in log.query(action="auth.login")} == {"auth.login"}
    assert len(log.query(action="auth.*")) == 8 and len(log.query(action="http.*")) == 22
    assert log.query(actor="nobody") == []
    pages, before = [], None
    while True:
        page = log.query(actor="user2", limit=4, before_seq=before)
        if not page:
            break
        pages.append([r.seq for r in page])
        before = page[-1].seq
    assert pages == [[30, 27, 24, 21], [18, 15, 12, 9], [6, 3]]
    record = log.query(limit=1)[0]
    assert record.event == _event(29) and record.to_json()["time"].endswith("Z")


def test_unusual_details_are_stored_and_chinese_text_survives(log: AuditLog) -> None:
    detail = {
        "问题": "报销流程是什么？",
        3: ("tuple", {"set"}),
        "lone": "\ud800x",
        "nested": {"k": [1.5, None]},
    }
    seq = log.append(AuditEvent("kb.create", actor="张三", kb="财务制度", detail=detail))
    record = log.query()[0]
    assert record.seq == seq and record.actor == "张三" and record.kb == "财务制度"
    assert record.detail["问题"] == "报销流程是什么？" and record.detail["3"] == ["tuple", ["set"]]
    assert record.detail["lone"] == "?x"
    assert log.verify().ok
    with pytest.raises(UserInputError):
        log.append(AuditEvent("x"), ts=float("nan"))


def test_prune_keeps_the_chain_verifiable_and_says_what_it_removed(log: AuditLog) -> None:
    now = T0 + 100 * DAY
    _fill(log, 30, start=now - 40 * DAY)
    _fill(log, 10, start=now - 5 * DAY)
    assert log.prune(now=now) == 30
    verdict = log.verify()
    assert verdict.ok and verdict.records == 11, verdict.reason
    prune = log.query(action="audit.prune")[0]
    assert prune.seq == 41 and prune.detail["through_seq"] == 30 and prune.detail["deleted"] == 30
    assert [r.seq for r in log.query()][-1] == 31
    assert log.prune(now=now) == 0
    _fill(log, 2, start=now)
    assert log.verify().ok
    assert log.prune(now=now + 60 * DAY) == 13  # everything old: only the new prune record remains
    verdict = log.verify()
    assert verdict.ok and verdict.records == 1
    assert AuditLog(log.path.with_name("other.sqlite3"), retention_days=None).prune() == 0


def test_after_a_prune_deleting_more_old_records_is_still_found(log: AuditLog) -> None:
    now = T0 + 100 * DAY
    _fill(log, 10, start=now - 40 * DAY)
    _fill(log, 10, start=now - 1 * DAY)
    log.prune(now=now)
    _sql(log, ("DELETE FROM audit WHERE seq = 11", ()))
    verdict = log.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 11)


def test_moving_the_anchor_without_a_prune_record_is_found(log: AuditLog) -> None:
    _fill(log, 10)
    five = _row(log, 5)
    _sql(
        log,
        ("DELETE FROM audit WHERE seq <= 5", ()),
        ("UPDATE audit_anchor SET seq = 5, hash = ? WHERE id = 1", (five["hash"],)),
    )
    verdict = log.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 5)
    assert "outside retention" in verdict.reason


EDITABLE = (*COLUMNS[1:], "prev_hash", "hash")
VALUES = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.none(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=st.integers(1, 6), column=st.sampled_from(EDITABLE), value=VALUES)
def test_any_single_field_edit_is_found_at_its_record(seq: int, column: str, value: object) -> None:
    with tempfile.TemporaryDirectory() as tmp, AuditLog(Path(tmp) / "audit.sqlite3") as audit_log:
        _fill(audit_log, 6)
        before = _row(audit_log, seq)[column]
        try:
            _sql(audit_log, (f"UPDATE audit SET {column} = ? WHERE seq = ?", (value, seq)))
        except sqlite3.IntegrityError:
            reject()  # NOT NULL: the database itself refuses this edit
        after = _row(audit_log, seq)[column]
        assume(canonical_json(after) != canonical_json(before))  # column affinity may store it unchanged
        verdict = audit_log.verify()
        assert (verdict.ok, verdict.first_bad_seq) == (False, seq), verdict.reason
