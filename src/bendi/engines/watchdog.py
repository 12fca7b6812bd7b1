"""The shim between bendi and an engine process: when bendi dies, the engine's whole process group dies.

Run as a script (`python watchdog.py BENDI_PID -- COMMAND...`, standard library only, so it never
depends on how bendi itself was installed). bendi starts it as the leader of a new process group;
the engine and everything it spawns (vLLM's EngineCore and workers) stay in that group.

- The engine gets PR_SET_PDEATHSIG=SIGKILL: it dies with this shim.
- This shim watches bendi (a parent-death signal, and its parent pid every 0.25 s, since that
  signal fires when the *thread* that started it exits, and may have been missed before it was
  set). When bendi is gone, it kills its whole process group, itself included: `kill -9` of bendi
  leaves no engine process behind.
- When the engine exits by itself (a crash), its children may live on (vLLM's EngineCore outlives
  a killed API server): this shim kills what is left of the group, then exits with the engine's
  code (128 + N for signal N), which bendi reports.
- SIGTERM (bendi stopping the group) is left to the engine: this shim waits for it to exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from types import FrameType

PR_SET_PDEATHSIG = 1
POLL_S = 0.25


def set_parent_death_signal(signum: int) -> None:
    """Ask Linux to send `signum` to this process when its parent exits (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


def _group_members(pgid: int) -> list[int]:
    """Processes in process group `pgid`, from /proc (the 5th field of /proc/PID/stat)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def kill_rest_of_group() -> None:
    me = os.getpid()
    for pid in _group_members(os.getpgrp()):
        if pid != me:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: watchdog.py BENDI_PID -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    bendi_pid = int(argv[1])

    def bendi_gone() -> bool:
        return os.getppid() != bendi_pid

    def kill_everything() -> None:
        os.killpg(os.getpgrp(), signal.SIGKILL)  # the engine, its children and this shim

    def on_parent_death(signum: int, frame: FrameType | None) -> None:
        if bendi_gone():
            kill_everything()

    def on_terminate(signum: int, frame: FrameType | None) -> None:
        pass  # the engine got the same signal from bendi's killpg; wait for it to exit

    signal.signal(signal.SIGUSR1, on_parent_death)
    signal.signal(signal.SIGTERM, on_terminate)
    signal.signal(signal.SIGINT, on_terminate)
    set_parent_death_signal(signal.SIGUSR1)
    if bendi_gone():
        return 1
    try:
        # Python handlers reset to the default at exec, so the engine gets SIGTERM as usual.
        child = subprocess.Popen(argv[3:], preexec_fn=lambda: set_parent_death_signal(signal.SIGKILL))
    except OSError as exc:
        print(f"could not start {argv[3]!r}: {exc}", file=sys.stderr, flush=True)
        return 127
    while True:
        try:
            code = child.wait(timeout=POLL_S)
            break
        except subprocess.TimeoutExpired:
            if bendi_gone():
                kill_everything()
    kill_rest_of_group()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
