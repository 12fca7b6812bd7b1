"""Graceful shutdown: stop admitting, let running streams finish within a grace period, then end
the rest with a final error event."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("bendi.gateway")


class Drain:
    """Shared by the admission gate (refuse new work) and every running stream (stop when expired)."""

    def __init__(self) -> None:
        self.draining = False
        self.expired = False

    def begin(self, admission: Any, grace_s: float, on_idle: Any) -> None:
        """Start draining (called once, from the SIGTERM handler on the event loop thread)."""
        if self.draining:
            return
        self.draining = True
        admission.draining = True
        log.warning(
            "shutting down: no new requests; %d in flight, %.0f s grace", admission.total_in_flight(), grace_s
        )
        asyncio.get_running_loop().create_task(self._wait(admission, grace_s, on_idle))

    async def _wait(self, admission: Any, grace_s: float, on_idle: Any) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while admission.total_in_flight() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if admission.total_in_flight():
            self.expired = True  # streams still running now end with an error event
            end = loop.time() + 5.0
            while admission.total_in_flight() and loop.time() < end:
                await asyncio.sleep(0.05)
        on_idle()
