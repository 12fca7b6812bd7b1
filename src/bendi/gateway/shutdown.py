"""Graceful shutdown: stop admitting, let running streams finish within a grace period, then end
the rest with a final error event and exit 0."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger("bendi.gateway")
# Kernel send buffer per connection. Linux would auto-grow it to megabytes, so a client that stops
# reading could absorb minutes of tokens before a send ever blocks; bounded, the stalled-reader
# timeout (settings.stalled_reader_timeout_s) fires after a few hundred tokens. Accepted
# connections inherit it from the listening socket.
SEND_BUFFER_BYTES = 64 * 1024


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
            log.warning(
                "grace period over: ending %d streams with an error event", admission.total_in_flight()
            )
            self.expired = True  # streams still running now end with an error event
            end = loop.time() + 5.0
            while admission.total_in_flight() and loop.time() < end:
                await asyncio.sleep(0.05)
        on_idle()


class DrainingServer(uvicorn.Server):
    """SIGTERM/Ctrl-C: stop admitting, let streams finish within the grace period, then exit 0.
    A second signal exits at once."""

    def __init__(self, config: uvicorn.Config, app: Any, grace_s: float) -> None:
        super().__init__(config)
        self._app, self._grace_s = app, grace_s

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None and self.config.uds is None and self.config.fd is None:
            listener = self.config.bind_socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            sockets = [listener]
        super().run(sockets=sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain: Drain = self._app.state.drain
        if not self.started or drain.draining:
            super().handle_exit(sig, frame)
            return
        finish = functools.partial(self._exit_cleanly, sig, frame)
        # A signal handler may not touch asyncio objects directly: hand over to the loop.
        asyncio.get_event_loop().call_soon_threadsafe(
            drain.begin, self._app.state.admission, self._grace_s, finish
        )

    def _exit_cleanly(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # Drained: exit 0 instead of uvicorn re-raising the signal (which would end with -15).
        self._captured_signals.clear()
