"""Admission control: per-model slots, a bounded queue with a maximum wait, per-client quotas.

Over the limit a request is refused at once with 503 (server full) or 429 (this client is over its
own quota), both with Retry-After: never an unbounded queue, never a hang."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field

from bendi.core.errors import OverloadedError, QuotaExceededError
from bendi.core.settings import Settings


@dataclass
class _Gate:
    active: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    mean_service_s: float = 5.0  # moving average of how long an admitted request holds its slot


class Ticket:
    """Holds one slot until released (idempotent)."""

    def __init__(self, admission: Admission, model: str, client: str) -> None:
        self._admission, self.model, self.client = admission, model, client
        self.admitted_s = time.monotonic()
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._release(self)


class Admission:
    def __init__(self, settings: Settings) -> None:
        self.capacity = max(1, settings.parallel_sequences)
        self.max_queue = max(0, settings.max_queue)
        self.max_wait_s = settings.max_queue_wait_s
        self.per_client = settings.per_client_max_concurrent
        self._gates: dict[str, _Gate] = {}
        self._clients: dict[str, int] = {}
        self.draining = False

    def queue_depth(self) -> dict[str, int]:
        return {model: len(gate.waiters) for model, gate in self._gates.items()}

    def active(self) -> dict[str, int]:
        return {model: gate.active for model, gate in self._gates.items()}

    def total_in_flight(self) -> int:
        return sum(gate.active + len(gate.waiters) for gate in self._gates.values())

    def _retry_after_s(self, gate: _Gate) -> float:
        waves = (len(gate.waiters) + 1) / self.capacity
        return float(min(60, max(1, math.ceil(gate.mean_service_s * waves))))

    async def enter(self, model: str, client: str) -> Ticket:
        """Admit a request for `model` or raise OverloadedError/QuotaExceededError."""
        gate = self._gates.setdefault(model, _Gate())
        if self.draining:
            raise OverloadedError("The server is shutting down; retry against the restarted server.", 5.0)
        if self.per_client and self._clients.get(client, 0) >= self.per_client:
            raise QuotaExceededError(
                f"You already have {self.per_client} requests running (the per-client limit). "
                "Wait for one to finish.", self._retry_after_s(gate),
            )  # fmt: skip
        ticket = Ticket(self, model, client)
        # Queued requests count against the quota too, so one client cannot fill the queue.
        self._clients[client] = self._clients.get(client, 0) + 1
        try:
            await self._take_slot(gate, model, ticket)
        except BaseException:
            self._forget_client(client)
            raise
        return ticket

    async def _take_slot(self, gate: _Gate, model: str, ticket: Ticket) -> None:
        if gate.active < self.capacity and not gate.waiters:
            gate.active += 1
        elif len(gate.waiters) >= self.max_queue:
            raise OverloadedError(
                f"{model} is busy: {gate.active} requests running and {len(gate.waiters)} waiting (the limit). "
                "Retry after the time in Retry-After.", self._retry_after_s(gate),
            )  # fmt: skip
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            gate.waiters.append(waiter)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), timeout=self.max_wait_s)
            except (TimeoutError, asyncio.CancelledError) as exc:
                if waiter.done() and not waiter.cancelled():  # admitted just as we gave up: hand it on
                    gate.active -= 1
                    self._wake(gate)
                else:
                    waiter.cancel()
                    if waiter in gate.waiters:
                        gate.waiters.remove(waiter)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise OverloadedError(
                    f"{model} stayed busy for the whole {self.max_wait_s:.0f} s queue wait. Retry later.",
                    self._retry_after_s(gate),
                ) from None
            ticket.admitted_s = time.monotonic()

    def _forget_client(self, client: str) -> None:
        left = self._clients.get(client, 1) - 1
        if left:
            self._clients[client] = left
        else:
            self._clients.pop(client, None)

    def _wake(self, gate: _Gate) -> None:
        while gate.waiters and gate.active < self.capacity:
            waiter = gate.waiters.popleft()
            if not waiter.done():
                gate.active += 1  # the slot passes straight to the waiter
                waiter.set_result(None)

    def _release(self, ticket: Ticket) -> None:
        gate = self._gates[ticket.model]
        gate.active -= 1
        held = time.monotonic() - ticket.admitted_s
        gate.mean_service_s = 0.8 * gate.mean_service_s + 0.2 * held
        self._forget_client(ticket.client)
        self._wake(gate)
