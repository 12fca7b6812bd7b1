"""`bendi admin user ...` and `bendi admin department ...`: accounts and departments from the terminal."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bendi.cli.admin_operator import (
    access_control,
    read_password_stdin,
    record,
    require_team_mode,
    show_one_time_password,
    table,
    when,
)
from bendi.core.errors import UserInputError

ROLES_HELP = "admin, member or kb-editor"
PASSWORD_STDIN_HELP = "read the password from standard input (without it a one-time password is generated)"


def register(sub: Any) -> None:
    user = sub.add_parser("user", help="add, list, change, disable and delete users")
    users = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)

    p = users.add_parser("add", help="add a local user")
    p.add_argument("name", help="the username they log in with")
    p.add_argument("--password-stdin", action="store_true", help=PASSWORD_STDIN_HELP)
    p.add_argument("--role", default="member", help=f"{ROLES_HELP} (default member)")
    p.add_argument("--department", action="append", default=[], metavar="DEPT", help="repeatable")
    p.add_argument("--display-name", help="the name shown in the UI (any script; default the username)")
    p.set_defaults(func=_user_add)

    p = users.add_parser("list", help="list users")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_user_list)

    for action, text in (("disable", "block logins and API keys, end sessions"), ("enable", "allow again"),
                         ("delete", "delete the user with their keys and sessions")):  # fmt: skip
        p = users.add_parser(action, help=text)
        p.add_argument("name", help="username or user id")
        p.set_defaults(func=_user_state, action=action)

    p = users.add_parser("passwd", help="reset a password (ends all their sessions)")
    p.add_argument("name", help="username or user id")
    p.add_argument("--password-stdin", action="store_true", help=PASSWORD_STDIN_HELP)
    p.set_defaults(func=_user_passwd)

    p = users.add_parser("set", help="change role, departments, display name or quotas")
    p.add_argument("name", help="username or user id")
    p.add_argument("--role", help=ROLES_HELP)
    p.add_argument("--department", action="append", metavar="DEPT",
                   help="repeatable; replaces their departments")  # fmt: skip
    p.add_argument("--no-departments", action="store_true", help="remove them from every department")
    p.add_argument("--display-name")
    p.add_argument("--requests-per-minute", type=int, metavar="N", help="0: the server default")
    p.add_argument("--tokens-per-day", type=int, metavar="N", help="0: the server default")
    p.set_defaults(func=_user_set)

    department = sub.add_parser("department", help="add, list and delete departments")
    departments = department.add_subparsers(dest="department_command", metavar="ACTION", required=True)
    p = departments.add_parser("add", help="add a department (any script, e.g. 通风科)")
    p.add_argument("name")
    p.set_defaults(func=_department_add)
    p = departments.add_parser("list", help="list departments and their members")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_department_list)
    p = departments.add_parser("delete", help="delete a department and the access it was granted")
    p.add_argument("name", help="name or id")
    p.set_defaults(func=_department_delete)


def _user_add(args: argparse.Namespace) -> int:
    access = access_control()
    require_team_mode(access)
    password = read_password_stdin() if args.password_stdin else None
    user, generated = access.accounts.create_user(
        args.name, role=args.role, password=password, display=args.display_name, departments=args.department
    )
    record(access, "user.create", "admin user add", username=user.username, user_id=user.id, role=user.role,
           departments=[d.name for d in user.departments])  # fmt: skip
    print(f"Added {user.role} {user.username}" + _in_departments(user.departments) + ".")
    if generated:
        show_one_time_password(user, generated)
    return 0


def _in_departments(departments: tuple[Any, ...]) -> str:
    return f" in {', '.join(d.name for d in departments)}" if departments else ""


def _user_list(args: argparse.Namespace) -> int:
    users = access_control().accounts.users()
    if args.json:
        print(json.dumps([u.to_json() for u in users], ensure_ascii=False, indent=2))
        return 0
    if not users:
        print("No users yet. Start with `bendi admin init`.")
        return 0
    rows = []
    for u in users:
        state = "disabled" if u.disabled else "must change password" if u.must_change_password else "active"
        limits = "/".join(str(v) if v else "-" for v in (u.requests_per_minute, u.tokens_per_day))
        rows.append([u.username, u.display_name, u.role, state, ", ".join(d.name for d in u.departments) or "-",
                     u.source, limits, when(u.created_at)])  # fmt: skip
    table(rows, ["USERNAME", "NAME", "ROLE", "STATE", "DEPARTMENTS", "SOURCE", "RPM/TPD", "CREATED"])
    return 0


def _user_state(args: argparse.Namespace) -> int:
    access = access_control()
    user = access.accounts.find_user(args.name)
    if args.action == "delete":
        access.accounts.delete_user(user.id)
        record(access, "user.delete", "admin user delete", username=user.username, user_id=user.id)
        print(f"Deleted {user.username} (their API keys and sessions are gone).")
        return 0
    disable = args.action == "disable"
    access.accounts.update_user(user.id, disabled=disable)
    action = "user.disable" if disable else "user.update"
    record(access, action, f"admin user {args.action}", username=user.username, user_id=user.id,
           disabled=disable)  # fmt: skip
    if disable:
        print(f"Disabled {user.username}: their sessions ended and their API keys stop working at once.")
    else:
        print(f"Enabled {user.username}.")
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    access = access_control()
    user = access.accounts.find_user(args.name)
    if user.source != "local":
        raise UserInputError(f"{user.username} logs in through LDAP; change the password in the directory.")
    password = read_password_stdin() if args.password_stdin else None
    generated = access.accounts.set_password(user.id, password, must_change=password is None)
    record(access, "auth.password_change", "admin user passwd", username=user.username, user_id=user.id,
           generated=generated is not None)  # fmt: skip
    print(f"Reset the password of {user.username}; their sessions ended.")
    if generated:
        show_one_time_password(user, generated)
    return 0


def _user_set(args: argparse.Namespace) -> int:
    access = access_control()
    user = access.accounts.find_user(args.name)
    if args.no_departments and args.department:
        raise UserInputError("Give --department or --no-departments, not both.")
    departments = [] if args.no_departments else args.department
    wanted = (args.role, departments, args.display_name, args.requests_per_minute, args.tokens_per_day)
    if all(value is None for value in wanted):
        raise UserInputError(
            "Nothing to change: give --role, --department, --no-departments, --display-name, "
            "--requests-per-minute or --tokens-per-day."
        )
    updated = access.accounts.update_user(
        user.id, display=args.display_name, role=args.role, departments=departments,
        requests_per_minute=-1 if args.requests_per_minute is None else args.requests_per_minute,
        tokens_per_day=-1 if args.tokens_per_day is None else args.tokens_per_day,
    )  # fmt: skip
    changes = {"role": args.role, "display_name": args.display_name,
               "requests_per_minute": args.requests_per_minute, "tokens_per_day": args.tokens_per_day}  # fmt: skip
    given: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
    if departments is not None:
        given["departments"] = [d.name for d in updated.departments]
    record(access, "user.update", "admin user set", username=updated.username, user_id=updated.id, **given)
    print(
        f"Updated {updated.username}: "
        + ", ".join(f"{k.replace('_', ' ')} {_shown(v)}" for k, v in given.items())
    )
    return 0


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(value) or "none"
    return "server default" if value == 0 else str(value)


def _department_add(args: argparse.Namespace) -> int:
    access = access_control()
    department = access.accounts.create_department(args.name)
    record(access, "department.create", "admin department add", name=department.name, id=department.id)
    print(f"Added department {department.name} (id {department.id}).")
    return 0


def _department_list(args: argparse.Namespace) -> int:
    accounts = access_control().accounts
    members: dict[str, list[str]] = {}
    for user in accounts.users():
        for d in user.departments:
            members.setdefault(d.id, []).append(user.username)
    departments = accounts.departments()
    if args.json:
        print(json.dumps([{**d.to_json(), "members": members.get(d.id, [])} for d in departments],
                         ensure_ascii=False, indent=2))  # fmt: skip
        return 0
    if not departments:
        print("No departments yet. Add one with `bendi admin department add NAME`.")
        return 0
    rows = [[d.name, d.id, str(len(members.get(d.id, []))), ", ".join(members.get(d.id, [])) or "-"]
            for d in departments]  # fmt: skip
    table(rows, ["DEPARTMENT", "ID", "MEMBERS", "USERS"])
    return 0


def _department_delete(args: argparse.Namespace) -> int:
    access = access_control()
    department = access.accounts.department(args.name)
    access.accounts.delete_department(department.id)
    record(access, "department.delete", "admin department delete", name=department.name, id=department.id)
    print(
        f"Deleted department {department.name}; its members keep their accounts, the access it was granted is gone."
    )
    return 0
