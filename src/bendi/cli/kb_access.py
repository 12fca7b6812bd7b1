"""`bendi kb grant|revoke|access`: who may read or write a knowledge base, and who owns it (team mode)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from bendi.access.scope import KbScope
from bendi.cli.admin_operator import access_control, record, table
from bendi.core.errors import NotFoundError

if TYPE_CHECKING:
    from bendi.access.accounts import User
    from bendi.access.control import AccessControl
    from bendi.access.grants import SubjectKind

SINGLE_MODE_NOTE = ("Note: team mode is off, so access lists are not enforced yet; they apply from "
                    "`bendi admin init` on.")  # fmt: skip


def register(sub: Any) -> None:
    p = sub.add_parser("grant", help="let a department or a user read or write a knowledge base")
    p.add_argument("name", help="the knowledge base (identifier or name)")
    _subject_arguments(p)
    permission = p.add_mutually_exclusive_group(required=True)
    permission.add_argument("--read", dest="permission", action="store_const", const="read",
                            help="search, ask, chat, list and download documents")  # fmt: skip
    permission.add_argument("--write", dest="permission", action="store_const", const="write",
                            help="read, and add or remove documents")  # fmt: skip
    p.set_defaults(func=_grant)

    p = sub.add_parser("revoke", help="take a department's or a user's access away")
    p.add_argument("name", help="the knowledge base (identifier or name)")
    _subject_arguments(p)
    p.set_defaults(func=_revoke)

    p = sub.add_parser("access", help="who owns a knowledge base and who may use it")
    p.add_argument("name", help="the knowledge base (identifier or name)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_access)


def _subject_arguments(p: argparse.ArgumentParser) -> None:
    subject = p.add_mutually_exclusive_group(required=True)
    subject.add_argument("--department", metavar="DEPT", help="department name or id")
    subject.add_argument("--user", metavar="NAME", help="username or user id")


def first_admin(access: AccessControl) -> User | None:
    """The earliest-created active administrator: the owner of what the operator makes at this machine."""
    admins = [u for u in access.accounts.users() if u.role == "admin" and not u.disabled]
    return min(admins, key=lambda u: u.created_at, default=None)


def after_create(kb_name: str) -> None:
    """In team mode a base made from the CLI belongs to the first administrator (so it has an owner)."""
    access = access_control()
    if not access.team_mode:
        return
    owner = first_admin(access)
    if owner is not None:
        access.grants.set_owner(kb_name, owner.id)
    record(access, "kb.create", "kb create", kb=kb_name, owner=owner.username if owner else None)


def after_delete(kb_name: str) -> None:
    """A deleted base leaves no owner or access entries behind (a new base of that name starts clean)."""
    access = access_control()
    if not access.paths.access_db.exists():
        return
    access.grants.forget(kb_name)
    if access.team_mode:
        record(access, "kb.delete", "kb rm", kb=kb_name)


def _kb(name: str) -> tuple[str, str]:
    """(identifier, display name) of the base `name` names; the CLI operator sees every base."""
    from bendi.services import build_services

    kb = build_services(access_control().settings).knowledge.get(name, KbScope.everything())
    return kb.name, kb.display_name


def _subject(access: AccessControl, args: argparse.Namespace) -> tuple[SubjectKind, str, str]:
    """(kind, id, name) of the --department or --user given."""
    if args.department is not None:
        department = access.accounts.department(args.department)
        return "department", department.id, department.name
    user = access.accounts.find_user(args.user)
    return "user", user.id, user.username


def _grant(args: argparse.Namespace) -> int:
    access = access_control()
    kb_id, shown = _kb(args.name)
    kind, subject_id, subject_name = _subject(access, args)
    grant = access.grants.grant(kb_id, kind, subject_id, args.permission)
    record(access, "acl.grant", "kb grant", kb=kb_id, grant_id=grant.id, subject_kind=kind,
           subject_id=subject_id, subject_name=subject_name, permission=grant.permission)  # fmt: skip
    print(f"{kind.title()} {subject_name} may now {grant.permission} knowledge base {shown}.")
    if not access.team_mode:
        print(SINGLE_MODE_NOTE)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    access = access_control()
    kb_id, shown = _kb(args.name)
    kind, subject_id, subject_name = _subject(access, args)
    if not access.grants.revoke_subject(kb_id, kind, subject_id):
        raise NotFoundError(
            f"{kind.title()} {subject_name} has no access entry on knowledge base {shown}; "
            f"see `bendi kb access {kb_id}`."
        )
    record(access, "acl.revoke", "kb revoke", kb=kb_id, subject_kind=kind, subject_id=subject_id,
           subject_name=subject_name)  # fmt: skip
    print(f"{kind.title()} {subject_name} no longer has access to knowledge base {shown}.")
    return 0


def _access(args: argparse.Namespace) -> int:
    access = access_control()
    kb_id, shown = _kb(args.name)
    owner = _owner(access, kb_id)
    grants = [{"id": g.id, "subject_kind": g.subject_kind, "subject_id": g.subject_id,
               "subject_name": _subject_name(access, g.subject_kind, g.subject_id), "permission": g.permission}
              for g in access.grants.grants(kb_id)]  # fmt: skip
    if args.json:
        print(json.dumps({"kb": kb_id, "display_name": shown, "team_mode": access.team_mode, "owner": owner,
                          "grants": grants}, ensure_ascii=False, indent=2))  # fmt: skip
        return 0
    print(f"Knowledge base {shown}" + ("" if shown == kb_id else f" ({kb_id})"))
    print(f"Owner: {owner['username'] if owner else 'none (administrators manage it)'}")
    if grants:
        table([[g["subject_kind"], g["subject_name"], g["permission"], g["id"]] for g in grants],
              ["KIND", "WHO", "PERMISSION", "GRANT ID"])  # fmt: skip
    else:
        print(
            f"No grants: only its owner and administrators may use it. Add one with `bendi kb grant {kb_id} ...`."
        )
    if not access.team_mode:
        print(SINGLE_MODE_NOTE)
    return 0


def _owner(access: AccessControl, kb_id: str) -> dict[str, Any] | None:
    owner_id = access.grants.owner(kb_id)
    if owner_id is None:
        return None
    try:
        user = access.accounts.user(owner_id)
    except NotFoundError:
        return {"id": owner_id, "username": "(deleted user)", "display_name": ""}
    return {"id": user.id, "username": user.username, "display_name": user.display_name}


def _subject_name(access: AccessControl, kind: str, subject_id: str) -> str:
    try:
        if kind == "department":
            return access.accounts.department(subject_id).name
        return access.accounts.user(subject_id).username
    except NotFoundError:
        return f"(deleted {kind})"
