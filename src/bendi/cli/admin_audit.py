"""`bendi admin audit ...` and `bendi admin usage`: check, read and export the audit log; usage totals."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, Literal

from bendi.cli.admin_operator import access_control, parse_duration, record, since, table, when
from bendi.core.errors import UserInputError

USAGE_GROUPS = ("user", "model", "day", "key")


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="verify, list and export the audit log")
    audits = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    p = audits.add_parser("verify", help="check the hash chain (exit 1 and the first bad record if broken)")
    p.set_defaults(func=_verify)

    p = audits.add_parser("export", help="write records as JSON lines (default) or CSV")
    p.add_argument("--since", metavar="DURATION", help="e.g. 1d, 12h, 90m (default: every record)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON lines, one record a line (the default)")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row")
    p.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of standard output"
    )
    p.set_defaults(func=_export)

    p = audits.add_parser("list", help="recent records, newest first")
    p.add_argument("--since", default="1d", metavar="DURATION", help="e.g. 1d, 12h, 90m (default 1d)")
    p.add_argument("--actor", metavar="NAME", help="only this actor (a username, or cli:<os user>)")
    p.add_argument(
        "--action", metavar="A", help="only this action, e.g. auth.login_failed, or a prefix: auth.*"
    )
    p.add_argument("--limit", type=int, default=200, metavar="N", help="at most N records (default 200)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)

    p = sub.add_parser("usage", help="tokens and requests per user, model, day or key")
    p.add_argument("--since", default="7d", metavar="DURATION", help="e.g. 7d, 12h (default 7d)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true")
    out.add_argument("--csv", action="store_true")
    p.add_argument("--by", default="user,model", metavar="GROUPS",
                   help=f"comma-separated, any of {','.join(USAGE_GROUPS)} (default user,model)")  # fmt: skip
    p.set_defaults(func=_usage)


def _verify(args: argparse.Namespace) -> int:
    verdict = access_control().audit.verify()
    if verdict.ok:
        print(f"Audit log intact: {verdict.records} records, hash chain verified.")
        return 0
    print(f"Audit log BROKEN at record seq {verdict.first_bad_seq}: {verdict.reason}")
    print(
        "Keep a copy of audit.sqlite3 and audit.head as evidence before changing anything.", file=sys.stderr
    )
    return 1


def _export(args: argparse.Namespace) -> int:
    access = access_control()
    fmt: Literal["jsonl", "csv"] = "csv" if args.csv else "jsonl"
    start = since(args.since)
    if args.output is None:
        count = access.audit.export(sys.stdout, since=start, fmt=fmt)
    else:
        try:
            with args.output.open("w", encoding="utf-8", newline="" if fmt == "csv" else None) as out:
                count = access.audit.export(out, since=start, fmt=fmt)
        except OSError as exc:
            raise UserInputError(
                f"Cannot write {args.output}: {exc.strerror or exc}. Pick another file."
            ) from exc
        print(f"Exported {count} audit records to {args.output}.", file=sys.stderr)
    record(access, "audit.export", "admin audit export", since=args.since, format=fmt, records=count,
           file=str(args.output) if args.output else None)  # fmt: skip
    return 0


def _list(args: argparse.Namespace) -> int:
    records = access_control().audit.query(since=since(args.since), actor=args.actor, action=args.action,
                                           limit=args.limit)  # fmt: skip
    if args.json:
        print(json.dumps([r.to_json() for r in records], ensure_ascii=False, indent=2))
        return 0
    if not records:
        print(
            f"No audit records in the last {args.since}"
            + (" that match." if args.actor or args.action else ".")
        )
        return 0
    rows = []
    for r in records:
        what = " ".join(x for x in (r.method, r.route, str(r.status) if r.status else "") if x)
        extra = ", ".join(f"{k}={v}" for k, v in r.detail.items() if k != "text" and not k.endswith("_id"))
        rows.append([str(r.seq), when(r.ts), r.actor or "-", r.action, r.address or "-", what or "-",
                     r.kb or "", extra[:80]])  # fmt: skip
    table(rows, ["SEQ", "TIME", "ACTOR", "ACTION", "ADDRESS", "REQUEST", "KB", "DETAIL"])
    return 0


def _usage(args: argparse.Namespace) -> int:
    groups = [g.strip() for g in args.by.split(",") if g.strip()]
    unknown = [g for g in groups if g not in USAGE_GROUPS]
    if unknown or not groups:
        raise UserInputError(
            f"--by takes a comma-separated list of {', '.join(USAGE_GROUPS)}, not {args.by!r}."
        )
    start = time.time() - parse_duration(args.since)
    rows: list[dict[str, Any]] = [
        r.to_json() for r in access_control().usage.summary(since=start, group_by=groups)
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if args.csv:
        from bendi.access.audit_export import escape_csv_cell  # usernames may start with "=": not a formula

        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else groups)
        writer.writeheader()
        writer.writerows(
            {k: escape_csv_cell(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows
        )
        return 0
    if not rows:
        print(f"No usage recorded in the last {args.since}.")
        return 0
    hidden = {"user_id"}  # the username says who; --json and --csv keep the id
    header = [h for h in rows[0] if h not in hidden and any(row.get(h) is not None for row in rows)]
    table(
        [[_cell(row.get(h)) for h in header] for row in rows], [h.upper().replace("_", " ") for h in header]
    )
    return 0


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
