"""The admission gate on its own (deterministic timing): slots, bounded queue, max wait, quotas,
FIFO hand-over, and no slot leaked when a waiter gives up or is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from bendi.core.errors import OverloadedError, QuotaExceededError
from bendi.core.settings import Settings
from bendi.gateway.admission import Admission


def gate(tmp_path, **overrides: object) -> Admission:  # type: ignore[no-untyped-def]
    values = {"parallel_sequences": 2, "max_queue": 2, "max_queue_wait_s": 0.3} | overrides
    return Admission(Settings(home=tmp_path, **values))  # type: ignore[arg-type]


def test_full_slots_and_full_queue_refuse_at_once_with_retry_after(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        admission = gate(tmp_path)
        running = [await admission.enter("m", f"c{i}") for i in range(2)]
        waiters = [asyncio.create_task(admission.enter("m", f"w{i}")) for i in range(2)]
        await asyncio.sleep(0)
        assert admission.queue_depth() == {"m": 2}
        with pytest.raises(OverloadedError) as refused:
            await admission.enter("m", "late")
        assert refused.value.retry_after_s >= 1
        running[0].release()  # the first waiter (FIFO) gets the slot
        first = await asyncio.wait_for(waiters[0], 1)
        assert not waiters[1].done() and admission.active() == {"m": 2}
        for ticket in (running[1], first):
            ticket.release()
        (await asyncio.wait_for(waiters[1], 1)).release()
        assert admission.active() == {"m": 0} and admission.total_in_flight() == 0

    asyncio.run(scenario())


def test_a_waiter_past_the_max_wait_gets_503_and_leaks_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        admission = gate(tmp_path, parallel_sequences=1)
        holder = await admission.enter("m", "a")
        with pytest.raises(OverloadedError, match="queue wait"):
            await admission.enter("m", "b")
        holder.release()
        assert admission.total_in_flight() == 0
        (await admission.enter("m", "b")).release()  # the quota count of "b" was given back too

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_the_queue(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        admission = gate(tmp_path, parallel_sequences=1, max_queue_wait_s=30)
        holder = await admission.enter("m", "a")
        waiter = asyncio.create_task(admission.enter("m", "b"))
        await asyncio.sleep(0.01)
        waiter.cancel()  # the client disconnected while queued
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert admission.queue_depth() == {"m": 0}
        holder.release()
        assert admission.total_in_flight() == 0

    asyncio.run(scenario())


def test_per_client_quota_is_429_and_counts_queued_requests(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        admission = gate(tmp_path, parallel_sequences=1, per_client_max_concurrent=2, max_queue_wait_s=30)
        first = await admission.enter("m", "key:abc")
        queued = asyncio.create_task(admission.enter("m", "key:abc"))
        await asyncio.sleep(0)
        with pytest.raises(QuotaExceededError):
            await admission.enter("m", "key:abc")
        other = asyncio.create_task(admission.enter("m", "key:other"))  # other clients still queue
        await asyncio.sleep(0)
        assert admission.queue_depth() == {"m": 2}
        first.release()
        (await queued).release()
        (await other).release()
        assert admission.total_in_flight() == 0

    asyncio.run(scenario())


def test_draining_refuses_new_work(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        admission = gate(tmp_path)
        admission.draining = True
        with pytest.raises(OverloadedError, match="shutting down"):
            await admission.enter("m", "a")

    asyncio.run(scenario())
