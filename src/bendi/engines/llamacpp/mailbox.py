"""Hand a step's events from the scheduler thread to an event loop without giving up the GIL.

`loop.call_soon_threadsafe` wakes the loop with a `send()` that releases the GIL; the woken event
loop then takes it and the scheduler thread waits (up to the 5 ms switch interval) before it can
build the next batch: ~0.75 ms per decode step measured at 8 streams, the streams' own time. A
mailbox is a pipe the loop watches: the scheduler appends to a deque and writes one byte through
libc with the GIL held, then releases it in `llama_decode`, so the loop's work overlaps the decode.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import sys
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bendi.engine")
_write_keeping_gil: Any = None
if sys.platform != "win32":
    _libc = ctypes.PyDLL(None)  # PyDLL: calls keep the GIL (CDLL would release it)
    _write_keeping_gil = _libc.write
    _write_keeping_gil.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    _write_keeping_gil.restype = ctypes.c_ssize_t

_MAILBOXES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Mailbox] = weakref.WeakKeyDictionary()


class Mailbox:
    """One per event loop: callbacks queued by other threads, run on the loop in posting order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._pending: deque[tuple[Callable[[Any], None], Any]] = deque()
        try:
            loop.add_reader(self._read_fd, self._drain)
        except BaseException:
            _close_fds(self._read_fd, self._write_fd)
            raise
        weakref.finalize(loop, _close_fds, self._read_fd, self._write_fd)

    def post(self, callback: Callable[[Any], None], argument: Any) -> None:
        """From any thread; never blocks (a full pipe already has a wake-up pending)."""
        self._pending.append((callback, argument))
        _write_keeping_gil(self._write_fd, b"\0", 1)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._read_fd, 4096)
        while self._pending:
            callback, argument = self._pending.popleft()
            try:
                callback(argument)
            except Exception:  # one bad delivery must not strand the others
                log.exception("delivering engine events failed")


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def open_mailbox(loop: asyncio.AbstractEventLoop) -> None:
    """Give `loop` a mailbox (call on the loop's own thread; idempotent). Loops that cannot watch
    a pipe (Windows' proactor) keep using call_soon_threadsafe."""
    if loop in _MAILBOXES or _write_keeping_gil is None:
        return
    # A loop without add_reader raises NotImplementedError here, and post() falls back for it.
    with contextlib.suppress(NotImplementedError):
        _MAILBOXES[loop] = Mailbox(loop)


def post(loop: asyncio.AbstractEventLoop, callback: Callable[[Any], None], argument: Any) -> None:
    """Run `callback(argument)` on `loop` soon; silently dropped if the loop is closed (nobody is
    listening there any more)."""
    if loop.is_closed():
        return
    mailbox = _MAILBOXES.get(loop)
    if mailbox is not None:
        mailbox.post(callback, argument)
    else:
        with contextlib.suppress(RuntimeError):  # closed between the check and now
            loop.call_soon_threadsafe(callback, argument)
