"""The usage ledger on a real SQLite file, and the quota gate that answers 429 with a Retry-After."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bendi.access.usage import QuotaGate, QuotaLimits, UsageLedger, UsageRow, seconds_to_utc_midnight, utc_day
from bendi.core.errors import QuotaExceededError, UserInputError

DAY = 86400.0
T0 = 1_750_032_000.0  # 2025-06-16 00:00:00 UTC


@pytest.fixture()
def ledger(tmp_path: Path) -> Iterator[UsageLedger]:
    with UsageLedger(tmp_path / "usage.sqlite3") as usage_ledger:
        yield usage_ledger


class Clock:
    """A monotonic clock the test moves by hand (the gate takes any callable)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _seed(ledger: UsageLedger) -> None:
    for ts, user, name, key, model, p, c in [
        (T0 + 60, "u1", "alice", "k1", "m-7b", 100, 10),
        (T0 + 120, "u1", "alice", "k1", "m-7b", 50, 5),
        (T0 + 180, "u1", "alice", None, "m-32b", 1000, 100),
        (T0 + 240, "u2", "bob", "k2", "m-7b", 7, 3),
        (T0 + DAY + 60, "u1", "alice", "k1", "m-7b", 1, 1),
        (T0 + DAY + 90, None, "local", None, "m-7b", 20, 20),
        (T0 + DAY + 95, None, "admin-key", None, "m-7b", 30, 30),
    ]:
        ledger.record(user_id=user, username=name, key_id=key, model=model, prompt_tokens=p,
                      completion_tokens=c, ts=ts)  # fmt: skip


def test_record_upserts_one_row_per_day_user_key_and_model(ledger: UsageLedger) -> None:
    _seed(ledger)
    rows = ledger.summary(since=T0)
    assert rows[:3] == [
        UsageRow("2025-06-17", None, "admin-key", None, "m-7b", 1, 30, 30),
        UsageRow("2025-06-17", None, "local", None, "m-7b", 1, 20, 20),
        UsageRow("2025-06-17", "u1", "alice", "k1", "m-7b", 1, 1, 1),
    ]
    assert rows[3:] == [
        UsageRow("2025-06-16", "u1", "alice", None, "m-32b", 1, 1000, 100),
        UsageRow("2025-06-16", "u1", "alice", "k1", "m-7b", 2, 150, 15),
        UsageRow("2025-06-16", "u2", "bob", "k2", "m-7b", 1, 7, 3),
    ]
    assert rows[3].total_tokens == 1100 and rows[3].to_json()["total_tokens"] == 1100


def test_summary_groups_on_what_was_asked_and_leaves_the_rest_none(ledger: UsageLedger) -> None:
    _seed(ledger)
    by_user = ledger.summary(since=T0, group_by=("user",))
    assert by_user == [
        UsageRow(None, "u1", "alice", None, None, 4, 1151, 116),
        UsageRow(None, None, "admin-key", None, None, 1, 30, 30),
        UsageRow(None, None, "local", None, None, 1, 20, 20),
        UsageRow(None, "u2", "bob", None, None, 1, 7, 3),
    ]
    assert ledger.summary(since=T0, group_by="user,model")[0] == UsageRow(
        None, "u1", "alice", None, "m-32b", 1, 1000, 100
    )
    assert ledger.summary(since=T0, group_by=["model"]) == [
        UsageRow(None, None, None, None, "m-32b", 1, 1000, 100),
        UsageRow(None, None, None, None, "m-7b", 6, 208, 69),
    ]
    assert [r.day for r in ledger.summary(since=T0, group_by=("day",))] == ["2025-06-17", "2025-06-16"]
    assert ledger.summary(since=T0 + DAY + 5, group_by=()) == [
        UsageRow(None, None, None, None, None, 3, 51, 51)
    ]
    assert [r.key_id for r in ledger.summary(since=T0, group_by=("key",))] == [None, "k1", "k2"]
    assert ledger.summary(since=T0 + 5 * DAY) == []
    assert ledger.summary(since=T0 + 5 * DAY, group_by=()) == []
    with pytest.raises(UserInputError, match="'department'"):
        ledger.summary(since=T0, group_by=("user", "department"))


def test_tokens_today_by_user_by_key_and_in_all(ledger: UsageLedger) -> None:
    _seed(ledger)
    today = T0 + 600
    assert ledger.tokens_today(user_id="u1", now=today) == 1265
    assert ledger.tokens_today(key_id="k1", now=today) == 165
    assert ledger.tokens_today(user_id="u1", key_id="k1", now=today) == 165
    assert ledger.tokens_today(user_id="u2", now=today) == 10
    assert ledger.tokens_today(now=today) == 1275
    assert ledger.tokens_today(user_id="u1", now=today + DAY) == 2  # a new UTC day starts from zero
    assert ledger.tokens_today(user_id="nobody", now=today) == 0
    ledger.record(user_id="u9", username="zoe", key_id=None, model="m", prompt_tokens=4, completion_tokens=5)
    assert ledger.tokens_today(user_id="u9") == 9  # "now" by default


def test_the_ledger_persists_and_counts_exactly_under_threads(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    ledger = UsageLedger(path)

    def work() -> None:
        for _ in range(100):
            ledger.record(user_id="u1", username="alice", key_id="k1", model="m", prompt_tokens=2,
                          completion_tokens=3, ts=T0)  # fmt: skip

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger.close()
    with UsageLedger(path) as reopened:
        assert reopened.summary(since=T0) == [
            UsageRow(utc_day(T0), "u1", "alice", "k1", "m", 600, 1200, 1800)
        ]


def test_requests_per_minute_refuses_the_next_request_with_retry_after(ledger: UsageLedger) -> None:
    clock = Clock()
    gate = QuotaGate(ledger, clock=clock)
    limits = QuotaLimits(requests_per_minute=3, tokens_per_day=None)
    for _ in range(3):
        gate.admit("u1", None, limits)
        clock.now += 5
    with pytest.raises(QuotaExceededError) as refused:
        gate.admit("u1", None, limits)
    assert refused.value.http_status == 429
    assert 0 < refused.value.retry_after_s <= 60 and refused.value.retry_after_s == 45
    assert "3 per minute" in refused.value.message and "Retry in 45 seconds" in refused.value.message
    clock.now += 44
    with pytest.raises(QuotaExceededError):
        gate.admit("u1", None, limits)  # refusals do not count, but the oldest request is still in the window
    clock.now += 1.5
    gate.admit("u1", None, limits)  # the window slid past the first request


def test_users_and_keys_have_their_own_windows(ledger: UsageLedger) -> None:
    gate = QuotaGate(ledger, clock=Clock())
    limits = QuotaLimits(requests_per_minute=2, tokens_per_day=0)
    gate.admit("u1", "k1", limits)
    gate.admit("u1", "k1", limits)
    with pytest.raises(QuotaExceededError, match="your account"):
        gate.admit("u1", "k2", limits)  # another key of the same user: the user's window is full
    with pytest.raises(QuotaExceededError, match="this API key"):
        gate.admit(None, "k1", limits)  # the key's window is full too
    gate.admit("u2", "k3", limits)  # someone else is unaffected
    gate.admit(None, "k4", limits)
    gate.admit(None, "k4", limits)
    with pytest.raises(QuotaExceededError, match="this API key"):
        gate.admit(None, "k4", limits)
    gate.admit("u3", None, limits)


def test_tokens_per_day_refuses_until_utc_midnight(ledger: UsageLedger) -> None:
    gate = QuotaGate(ledger)
    limits = QuotaLimits(requests_per_minute=None, tokens_per_day=1000)
    ledger.record(
        user_id="u1", username="alice", key_id="k1", model="m", prompt_tokens=600, completion_tokens=300
    )
    gate.admit("u1", "k1", limits)  # 900 of 1000 used: still admitted
    ledger.record(
        user_id="u1", username="alice", key_id="k2", model="m", prompt_tokens=100, completion_tokens=0
    )
    with pytest.raises(QuotaExceededError) as refused:
        gate.admit("u1", "k1", limits)  # recording dropped the cached total at once
    expected = seconds_to_utc_midnight(time.time())
    assert abs(refused.value.retry_after_s - expected) <= 2 and refused.value.retry_after_s <= DAY
    assert "1,000 of 1,000 tokens" in refused.value.message and "your account" in refused.value.message
    assert "midnight UTC" in refused.value.message
    gate.admit("u2", "k1", QuotaLimits(None, 1000))  # k1 itself used 900: the key still has budget
    with pytest.raises(QuotaExceededError, match="this API key has used 900"):
        gate.admit("u2", "k1", QuotaLimits(None, 900))


def test_unlimited_never_refuses(ledger: UsageLedger) -> None:
    gate = QuotaGate(ledger)
    ledger.record(
        user_id="u1", username="alice", key_id="k1", model="m", prompt_tokens=10**9, completion_tokens=0
    )
    for limits in (QuotaLimits(None, None), QuotaLimits(0, 0), QuotaLimits()):
        assert limits.unlimited
        for _ in range(500):
            gate.admit("u1", "k1", limits)
    for _ in range(500):
        gate.admit(None, None, QuotaLimits(1, 1))  # nobody to count against (single-user mode)


def test_seconds_to_utc_midnight() -> None:
    assert seconds_to_utc_midnight(T0) == DAY
    assert seconds_to_utc_midnight(T0 + DAY - 1.5) == 1.5
    assert utc_day(T0 - 0.001) == "2025-06-15" and utc_day(T0) == "2025-06-16"
