"""`bendi service`: run bendi as a hardened systemd service (install, status, logs, uninstall)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from bendi.core.settings import DEFAULT_PORT
from bendi.ops.service import (
    DEFAULT_ENV_FILE,
    DEFAULT_SERVICE_HOME,
    DEFAULT_SERVICE_NAME,
    DEFAULT_SERVICE_USER,
    DEFAULT_UNIT_DIR,
    ServiceSpec,
    render_unit,
)


def register(subparsers: Any) -> None:
    service = subparsers.add_parser(
        "service", help="run bendi as a system service (systemd): install, status, logs"
    )
    sub = service.add_subparsers(dest="service_command", metavar="ACTION", required=True)

    p = sub.add_parser("install", help="write the systemd unit, create the account, enable and start it")
    p.add_argument(
        "--user", default=DEFAULT_SERVICE_USER, help="account it runs as; created if missing (default bendi)"
    )
    p.add_argument(
        "--home", type=Path, default=DEFAULT_SERVICE_HOME, help="data directory (default /var/lib/bendi)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--model", help="load this model at start (otherwise models load on first request)")
    p.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE,
                   help=f"optional file of BENDI_* secrets the unit reads (default {DEFAULT_ENV_FILE})")  # fmt: skip
    _add_common(p)
    p.add_argument("--no-start", action="store_true", help="write the unit but do not enable or start it")
    p.add_argument("--chown-data", action="store_true",
                   help="give an existing data directory (e.g. models imported as root) to the service account")  # fmt: skip
    p.add_argument(
        "--print", action="store_true", dest="print_only", help="print the unit and change nothing"
    )
    p.set_defaults(func=_install)

    p = sub.add_parser("status", help="is the service running and answering?")
    _add_common(p)
    p.set_defaults(func=_status)

    p = sub.add_parser("logs", help="the service's log from the journal")
    _add_common(p)
    p.add_argument("-n", "--lines", type=int, default=100, help="how many recent lines (default 100)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.set_defaults(func=_logs)

    p = sub.add_parser("uninstall", help="stop and remove the service (data and account are kept)")
    _add_common(p)
    p.set_defaults(func=_uninstall)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default=DEFAULT_SERVICE_NAME, help="service name (default bendi)")
    parser.add_argument(
        "--unit-dir",
        type=Path,
        default=DEFAULT_UNIT_DIR,
        help="where unit files go (default /etc/systemd/system)",
    )


def _install(args: argparse.Namespace) -> int:
    from bendi.cli.serving import is_loopback
    from bendi.core.settings import load_settings
    from bendi.ops.service_systemd import install

    spec = ServiceSpec(
        name=args.name, user=args.user, home=args.home.expanduser(), host=args.host, port=args.port,
        model=args.model, env_file=args.env_file, shutdown_grace_s=load_settings().shutdown_grace_s,
    )  # fmt: skip
    if args.print_only:
        print(render_unit(spec), end="")
        return 0
    report = install(spec, args.unit_dir, start=not args.no_start, adopt_home=args.chown_data)
    if report.created_user:
        print(f"Created the system account {spec.user} (no login).")
    if report.created_home:
        print(f"Created the data directory {spec.home} (owner {spec.user}, mode 750).")
    print(f"Wrote {report.unit_path}.")
    print(report.instructions)
    print(f"Models for the service: sudo -u {spec.user} BENDI_HOME={spec.home} bendi pull NAME "
          f"(or import files); secrets such as BENDI_API_KEY go in {spec.env_file} (chmod 600).")  # fmt: skip
    if not is_loopback(spec.host):
        print(f"It listens on {spec.host}, beyond this machine: its first start switches to team mode, and the "
              "first administrator's one-time password is in `bendi service logs`.")  # fmt: skip
    return 0


def _status(args: argparse.Namespace) -> int:
    from bendi.ops.service_systemd import service_state

    state = service_state(args.name, args.unit_dir)
    print(f"unit:     {state.unit_path}")
    print(f"runs as:  {state.user}, data in {state.home}")
    print(f"command:  {' '.join(state.command)}")
    print(f"health:   {'OK, ' if state.healthy else 'DOWN, '}{state.health_detail}")
    if state.systemctl_status is not None:
        print(state.systemctl_status)
    else:
        print("systemd is not running on this machine; the line above says whether a bendi answers there.")
    return 0 if state.healthy else 3  # 3: "not running", as systemctl status says it


def _logs(args: argparse.Namespace) -> int:
    from bendi.ops.service_systemd import journal_command

    argv = journal_command(args.name, args.lines, args.follow)
    return subprocess.call(argv, stdout=sys.stdout, stderr=sys.stderr)


def _uninstall(args: argparse.Namespace) -> int:
    from bendi.ops.service_systemd import uninstall

    removed = uninstall(args.name, args.unit_dir)
    if removed is None:
        print(f"No service {args.name} is installed; nothing to do.")
        return 0
    print(f"Stopped the service and removed {removed}. The data directory and the account are kept "
          "(delete them yourself if you no longer need them: userdel, rm -r).")  # fmt: skip
    return 0
