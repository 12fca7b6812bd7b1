"""`bendi admin`: organization mode from the terminal — first administrator, users, keys, audit, usage."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bendi.cli import admin_audit, admin_keys, admin_users
from bendi.cli.admin_operator import (
    access_control,
    prompt_new_password,
    read_password_stdin,
    record,
    show_one_time_password,
)
from bendi.core.errors import UserInputError

DEFAULT_ADMIN = "admin"


def register(subparsers: Any) -> None:
    admin = subparsers.add_parser(
        "admin",
        help="organization mode: administrators, users, departments, API keys, audit log, usage",
        description="Works on the data directory directly; a running `bendi serve` sees each change at once.",
    )
    sub = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    p = sub.add_parser("init", help="switch on team mode with a first administrator")
    p.add_argument("--username", help=f"the administrator's username (asked, default {DEFAULT_ADMIN!r})")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (without it: asked, or a one-time password is generated)",
    )
    p.set_defaults(func=_init)

    admin_users.register(sub)
    admin_keys.register(sub)
    admin_audit.register(sub)


def _init(args: argparse.Namespace) -> int:
    from bendi.cli.serving import public_base_url

    access = access_control()
    if access.team_mode or access.accounts.count_admins() > 0:  # say so before asking anything
        raise UserInputError(
            "Team mode is on already. Add administrators with `bendi admin user add NAME --role admin`."
        )
    interactive = sys.stdin.isatty() and not args.password_stdin
    username: str = args.username or ""
    if not username and interactive:
        username = input(f"Administrator username [{DEFAULT_ADMIN}]: ").strip()
    username = username or DEFAULT_ADMIN
    password: str | None = None
    if args.password_stdin:
        password = read_password_stdin()
    elif interactive:
        password = prompt_new_password(username)
    from bendi.services import build_services

    user, generated = build_services(access.settings).init_team(username, password)
    record(access, "user.create", "admin init", username=user.username, role=user.role, team_mode=True)
    print(f"Team mode is on. {user.username} is the first administrator.")
    if generated:
        show_one_time_password(user, generated)
    url = public_base_url(access.settings)
    print("Next steps:")
    print("  1. Start the server:  bendi serve   (add --host 0.0.0.0 to serve the network)")
    print(
        f"  2. Log in at {url}/ as {user.username}, then add people under Admin or with `bendi admin user add`."
    )
    return 0
