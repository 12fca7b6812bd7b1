"""What every `bendi admin` command needs as this machine's operator: access, audit, passwords, tables."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
import sys
import time
import unicodedata
from typing import TYPE_CHECKING, Any

from bendi.core.errors import UserInputError
from bendi.core.settings import load_settings

if TYPE_CHECKING:
    from bendi.access.accounts import User
    from bendi.access.control import AccessControl

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([dhm])")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0}
NOT_INITIALIZED = "Team mode is off: there is no administrator yet. Run `bendi admin init` first."


def access_control() -> AccessControl:
    """The access layer on this machine's data directory (the files `bendi serve` reads per request)."""
    from bendi.access.control import AccessControl
    from bendi.core.paths import DataPaths

    settings = load_settings()
    return AccessControl(settings, DataPaths(settings.home).ensure())


def require_team_mode(access: AccessControl) -> None:
    if not access.team_mode:
        raise UserInputError(NOT_INITIALIZED)


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `90m` -> seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else 0.0
    if seconds <= 0:
        raise UserInputError(
            f"Cannot read the duration {text!r}: write a positive number and a unit, e.g. 30d, 12h or 90m."
        )
    return seconds


def since(text: str | None) -> float | None:
    """The moment `text` (a duration) ago, or None for "from the beginning"."""
    return None if text is None else time.time() - parse_duration(text)


def operator() -> str:
    """The audit actor for commands typed at this machine: `cli:<os user>`."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # a container user with no passwd entry and no $USER
        name = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli:{name}"


def record(access: AccessControl, action: str, command: str, *, kb: str | None = None,
           **detail: Any) -> None:  # fmt: skip
    """Append one audit record for a change made from the command line (never a secret in `detail`)."""
    from bendi.access.audit import AuditEvent

    event = AuditEvent(action=action, actor=operator(), address="local", method="CLI", route=f"bendi {command}",
                       kb=kb, detail=detail)  # fmt: skip
    access.audit.append(event)


def read_password_stdin() -> str:
    """One password piped in (a trailing newline is dropped), e.g. `printf %s "$PW" | bendi ...`."""
    if sys.stdin.isatty():  # typed, not piped: at least do not echo it
        return getpass.getpass("Password: ")
    data = sys.stdin.read()
    password = data[:-1] if data.endswith("\n") else data
    password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise UserInputError(
            "--password-stdin read no password: pipe it in, e.g. printf '%s' \"$PASSWORD\" | bendi admin ..."
        )
    if "\n" in password:
        raise UserInputError("--password-stdin read more than one line; give the password on one line only.")
    return password


def prompt_new_password(username: str) -> str | None:
    """Ask at the terminal (twice, unechoed); None when the operator presses Enter to have one generated."""
    first = getpass.getpass(f"Password for {username} (Enter: generate a one-time password): ")
    if not first:
        return None
    if getpass.getpass("The same password again: ") != first:
        raise UserInputError("The two passwords differ. Run the command again.")
    return first


def show_one_time_password(user: User, password: str) -> None:
    print(f"One-time password for {user.username}: {password}")
    print("It is shown only this once. They must choose their own password when they first log in.")


def when(ts: float | None, empty: str = "-") -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else empty


def table(rows: list[list[str]], header: list[str]) -> None:
    """Columns as wide as their widest cell (CJK counts double, as terminals draw it)."""
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row)]
        print("  ".join(cells).rstrip())


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
