"""`bendi admin key ...`: API keys for users, made, listed and revoked from the terminal."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bendi.cli.admin_operator import access_control, parse_duration, record, require_team_mode, table, when

DEFAULT_KEY_NAME = "cli"


def register(sub: Any) -> None:
    key = sub.add_parser("key", help="create, list and revoke API keys")
    keys = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)

    p = keys.add_parser("create", help="create an API key for a user (shown once)")
    p.add_argument("--user", required=True, metavar="NAME", help="username or user id")
    p.add_argument("--scope", default="inference", help="inference (default), kb:write or admin")
    p.add_argument("--name", default=DEFAULT_KEY_NAME, metavar="LABEL", help="a label to recognize it by")
    p.add_argument("--expires", metavar="DURATION", help="e.g. 30d, 12h, 90m (default: never)")
    p.add_argument("--json", action="store_true", help='print {"key": ..., "id": ..., ...}')
    p.set_defaults(func=_create)

    p = keys.add_parser("list", help="list API keys (never their secrets)")
    p.add_argument("--user", metavar="NAME", help="only this user's keys")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)

    p = keys.add_parser("revoke", help="revoke a key at once")
    p.add_argument("id", help="the key id (see `bendi admin key list`)")
    p.set_defaults(func=_revoke)


def _create(args: argparse.Namespace) -> int:
    access = access_control()
    require_team_mode(access)
    user = access.accounts.find_user(args.user)
    expires_days = parse_duration(args.expires) / 86400 if args.expires else None
    secret, info = access.keys.create(user, name=args.name, scope=args.scope, expires_days=expires_days)
    record(access, "key.create", "admin key create", id=info.id, username=user.username, user_id=user.id,
           name=info.name, scope=info.scope, expires_at=info.expires_at)  # fmt: skip
    if args.json:
        print(json.dumps({"key": secret, **info.to_json()}, ensure_ascii=False, indent=2))
        return 0
    print(f"Created {info.scope} key {info.id} ({info.name}) for {user.username}, "
          + (f"expiring {when(info.expires_at)}." if info.expires_at else "not expiring."))  # fmt: skip
    print(secret)
    print("This key is shown only once: store it now. Revoke it with `bendi admin key revoke "
          f"{info.id}`.", file=sys.stderr)  # fmt: skip
    return 0


def _list(args: argparse.Namespace) -> int:
    access = access_control()
    user_id = access.accounts.find_user(args.user).id if args.user else None
    infos = access.keys.list(user_id)
    if args.json:
        print(json.dumps([i.to_json() for i in infos], ensure_ascii=False, indent=2))
        return 0
    if not infos:
        print("No API keys. Create one with `bendi admin key create --user NAME`.")
        return 0
    now = time.time()
    rows = []
    for i in infos:
        state = "revoked" if i.revoked_at else "active" if i.active(now) else "expired"
        rows.append([i.id, i.username, i.name, i.scope, i.prefix + "…", state, when(i.created_at),
                     when(i.expires_at, "never"), when(i.last_used_at, "never")])  # fmt: skip
    table(rows, ["ID", "USER", "NAME", "SCOPE", "PREFIX", "STATE", "CREATED", "EXPIRES", "LAST USED"])
    return 0


def _revoke(args: argparse.Namespace) -> int:
    access = access_control()
    info = access.keys.revoke(args.id)
    record(access, "key.revoke", "admin key revoke", id=info.id, username=info.username, user_id=info.user_id,
           name=info.name)  # fmt: skip
    print(f"Revoked key {info.id} ({info.name}) of {info.username}; it stops working at once.")
    return 0
