"""LDAP / Active Directory login: bind as the user, read their name and groups, map groups to a role."""

from __future__ import annotations

import math
import ssl
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bendi.core.errors import BendiError, UserInputError

MAX_USERNAME_CHARS = 256
# Object classes a group entry may have: OpenLDAP's three and Active Directory's "group".
GROUP_CLASSES = ("groupOfNames", "groupOfUniqueNames", "posixGroup", "group")
USER_ATTRIBUTES = ("cn", "displayName", "mail", "uid", "sAMAccountName", "memberOf")
# Bind results that mean "these credentials do not log in" (wrong password, no such entry, an entry
# that cannot authenticate). Anything else is the directory or its configuration failing.
REFUSED_BIND_RESULTS = frozenset({32, 34, 48, 49, 50, 53})
SIZE_LIMIT_EXCEEDED = 4


class LdapUnavailableError(BendiError):
    """The directory cannot answer (down, unreachable, too slow, or misconfigured): HTTP 503."""

    http_status = 503
    code = "ldap_unavailable"
    error_type = "server_error"


@dataclass(frozen=True)
class LdapConfig:
    """How to reach the directory and read a user's groups; built from Settings (ldap_*)."""

    url: str  # one URL, or several separated by spaces (tried in order until one answers)
    user_dn_template: str | None  # direct bind, e.g. uid={username},ou=people,dc=example,dc=org
    bind_dn: str | None  # service account for search-then-bind; None: search anonymously
    bind_password: str | None
    search_base: str | None
    user_filter: str
    group_base: str | None
    group_filter: str
    group_departments: dict[str, str] = field(hash=False)  # group cn or DN -> department name
    admin_groups: tuple[str, ...] = ()
    kb_editor_groups: tuple[str, ...] = ()
    timeout_s: float = 5.0

    @staticmethod
    def from_settings(settings: Any) -> LdapConfig | None:
        """None when LDAP is off (no ldap_url); UserInputError when the ldap_* settings cannot work."""
        url = (settings.ldap_url or "").strip()
        if not url:
            return None
        template = (settings.ldap_user_dn or "").strip() or None
        search_base = (settings.ldap_search_base or "").strip() or None
        bind_dn = (settings.ldap_bind_dn or "").strip() or None
        if template is None and search_base is None:
            raise UserInputError(
                "LDAP is on (BENDI_LDAP_URL) but bendi does not know how to find a user: set "
                "BENDI_LDAP_USER_DN (e.g. uid={username},ou=people,dc=example,dc=org) or "
                "BENDI_LDAP_SEARCH_BASE (with BENDI_LDAP_BIND_DN and BENDI_LDAP_BIND_PASSWORD)."
            )
        if template is not None and "{username}" not in template:
            raise UserInputError(
                "BENDI_LDAP_USER_DN must contain {username}, e.g. uid={username},ou=people,dc=example,dc=org."
            )
        if template is None and "{username}" not in settings.ldap_user_filter:
            raise UserInputError("BENDI_LDAP_USER_FILTER must contain {username}, e.g. (uid={username}).")
        if bind_dn is not None and not settings.ldap_bind_password:
            raise UserInputError(
                "BENDI_LDAP_BIND_DN is set without BENDI_LDAP_BIND_PASSWORD: set the service account's password."
            )
        return LdapConfig(
            url=url,
            user_dn_template=template,
            bind_dn=bind_dn,
            bind_password=settings.ldap_bind_password if bind_dn else None,
            search_base=search_base,
            user_filter=settings.ldap_user_filter,
            group_base=(settings.ldap_group_base or "").strip() or None,
            group_filter=settings.ldap_group_filter,
            group_departments=_parse_departments(settings.ldap_group_departments),
            admin_groups=tuple(g.strip() for g in settings.ldap_admin_groups if g.strip()),
            kb_editor_groups=tuple(g.strip() for g in settings.ldap_kb_editor_groups if g.strip()),
            timeout_s=float(settings.ldap_timeout_s),
        )


@dataclass(frozen=True)
class LdapIdentity:
    """Who logged in, as the directory says: the name to keep, their groups and what those grant."""

    username: str  # the directory's spelling (uid / sAMAccountName), else what was typed, normalized
    dn: str
    display_name: str
    email: str | None
    groups: tuple[str, ...]  # group DNs
    role: str  # "admin" | "kb-editor" | "member"
    departments: tuple[str, ...]  # department names, from config.group_departments


@dataclass(frozen=True)
class _Entry:
    dn: str
    attributes: dict[str, tuple[str, ...]]  # lower-case attribute name -> values

    def first(self, name: str) -> str | None:
        values = self.attributes.get(name.lower(), ())
        return values[0] if values else None


class LdapDirectory:
    """Checks a username and password against the directory; one connection per login, no caching."""

    def __init__(self, config: LdapConfig) -> None:
        self._config = config
        self._departments = [(_group_key(g), name) for g, name in config.group_departments.items()]
        self._admin_keys = frozenset(_group_key(g) for g in config.admin_groups)
        self._editor_keys = frozenset(_group_key(g) for g in config.kb_editor_groups)

    def authenticate(self, username: str, password: str) -> LdapIdentity | None:
        """The identity when the password is right; None when the username or password is wrong.

        Raises LdapUnavailableError when the directory cannot be asked.
        """
        name = normalize_username(username)
        # An empty password would be an "unauthenticated bind", which many servers answer with
        # success without checking anything: never send one.
        if name is None or not password:
            return None
        if self._config.user_dn_template is not None:
            return self._direct_bind(name, password)
        return self._search_then_bind(name, password)

    def _direct_bind(self, name: str, password: str) -> LdapIdentity | None:
        from ldap3 import BASE
        from ldap3.utils.dn import escape_rdn

        assert self._config.user_dn_template is not None
        dn = self._config.user_dn_template.replace("{username}", escape_rdn(name))
        with self._connection(dn, password) as conn:
            if conn is None:
                return None
            # A user may not be allowed to read their own entry: then they log in with what they typed.
            entries = self._search(conn, dn, "(objectClass=*)", BASE, USER_ATTRIBUTES, None)
            entry = entries[0] if entries else _Entry(dn, {})
            return self._identity(conn, entry, name)

    def _search_then_bind(self, name: str, password: str) -> LdapIdentity | None:
        from ldap3 import SUBTREE
        from ldap3.utils.conv import escape_filter_chars

        config = self._config
        assert config.search_base is not None
        with self._connection(config.bind_dn, config.bind_password, service=True) as service:
            assert service is not None
            query = config.user_filter.replace("{username}", escape_filter_chars(name))
            what = "BENDI_LDAP_SEARCH_BASE and BENDI_LDAP_USER_FILTER"
            entries = self._search(
                service, config.search_base, query, SUBTREE, USER_ATTRIBUTES, what, limit=2
            )
            if len(entries) != 1:  # nobody, or a filter that matches several people: nobody logs in
                return None
            with self._connection(entries[0].dn, password) as user:
                if user is None:
                    return None
            return self._identity(service, entries[0], name)

    def _identity(self, conn: Any, entry: _Entry, typed: str) -> LdapIdentity:
        username = entry.first("uid") or entry.first("sAMAccountName") or typed
        groups = self._groups(conn, entry, username)
        keys = [_keys_of(dn, cns) for dn, cns in groups]
        departments: list[str] = []
        for key, department in self._departments:
            if any(key in k for k in keys) and department not in departments:
                departments.append(department)
        role = "member"
        if any(k & self._admin_keys for k in keys):
            role = "admin"
        elif any(k & self._editor_keys for k in keys):
            role = "kb-editor"
        return LdapIdentity(
            username=username,
            dn=entry.dn,
            display_name=entry.first("displayName") or entry.first("cn") or username,
            email=entry.first("mail"),
            groups=tuple(dn for dn, _ in groups),
            role=role,
            departments=tuple(departments),
        )

    def _groups(self, conn: Any, entry: _Entry, username: str) -> list[tuple[str, tuple[str, ...]]]:
        """(group DN, its cn values) for every group the user is in: memberOf plus a group search."""
        from ldap3 import SUBTREE
        from ldap3.utils.conv import escape_filter_chars

        found: dict[str, tuple[str, ...]] = {dn: () for dn in entry.attributes.get("memberof", ())}
        base = self._config.group_base or self._config.search_base
        if base is not None:
            member_filter = self._config.group_filter.replace("{dn}", escape_filter_chars(entry.dn)).replace(
                "{username}", escape_filter_chars(username)
            )
            classes = "".join(f"(objectClass={c})" for c in GROUP_CLASSES)
            query = f"(&(|{classes}){member_filter})"
            for group in self._search(conn, base, query, SUBTREE, ("cn",), "BENDI_LDAP_GROUP_BASE"):
                found[group.dn] = group.attributes.get("cn", ())
        return list(found.items())

    @contextmanager
    def _connection(self, user: str | None, password: str | None, service: bool = False) -> Iterator[Any]:
        """A bound connection, or None when a user's credentials are refused (a service account's
        refusal is a configuration error). Closed on exit."""
        if not service and (not user or not password):
            yield None
            return
        conn, ok = self._bind(user, password)
        try:
            result = conn.result or {}
            if not ok:
                if not service and int(result.get("result", -1)) in REFUSED_BIND_RESULTS:
                    yield None
                    return
                who = "the service account BENDI_LDAP_BIND_DN" if service else "a user"
                raise LdapUnavailableError(
                    f"The LDAP server at {self._config.url} refused to bind {who} "
                    f"({result.get('description', 'error')} {result.get('message', '')!s}). "
                    "Check the BENDI_LDAP_* settings; local accounts can still log in."
                )
            yield conn
        finally:
            # unbind() on a broken socket raises too; the connection is gone either way.
            with suppress(Exception):
                conn.unbind()

    def _bind(self, user: str | None, password: str | None) -> tuple[Any, bool]:
        """(connection, bind succeeded) on the first configured server that answers.

        Not ldap3's ServerPool: after a failed pass over its servers it sleeps 10 s before giving up.
        """
        import ldap3

        urls = self._config.url.split()
        for index, url in enumerate(urls):
            tls = None
            if url.lower().startswith("ldaps://"):  # ldap3's default would not check the certificate
                tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, sni=urlsplit(url).hostname)
            server = ldap3.Server(url, connect_timeout=self._config.timeout_s, get_info=ldap3.NONE, tls=tls)
            conn = ldap3.Connection(
                server,
                user=user,
                password=password,
                authentication=ldap3.SIMPLE if user else ldap3.ANONYMOUS,
                # ldap3 packs the receive timeout into a timeval of whole seconds on Linux.
                receive_timeout=max(1, math.ceil(self._config.timeout_s)),
                auto_referrals=False,
                read_only=True,
                raise_exceptions=False,
            )
            try:
                with self._translate_errors():
                    return conn, bool(conn.bind())
            except LdapUnavailableError:
                with suppress(Exception):
                    conn.unbind()
                if index == len(urls) - 1:
                    raise
        raise LdapUnavailableError("BENDI_LDAP_URL names no server: set it to e.g. ldap://dc.example.org.")

    def _search(
        self,
        conn: Any,
        base: str,
        query: str,
        scope: Any,
        attrs: Sequence[str],
        what: str | None,
        limit: int = 0,
    ) -> list[_Entry]:
        """Entries found. A failed search raises (what names the setting to check), except that with
        what=None a missing or unreadable entry is just no entry."""
        from ldap3.core.exceptions import LDAPInvalidFilterError

        try:
            with self._translate_errors():
                conn.search(base, query, search_scope=scope, attributes=list(attrs), size_limit=limit)
        except LDAPInvalidFilterError as exc:
            raise LdapUnavailableError(
                f"The LDAP search filter {query!r} is not valid ({exc}): check BENDI_LDAP_USER_FILTER "
                "and BENDI_LDAP_GROUP_FILTER."
            ) from exc
        result = conn.result or {}
        code = int(result.get("result", -1))
        if code not in (0, SIZE_LIMIT_EXCEEDED) and what is not None:
            raise LdapUnavailableError(
                f"The LDAP search under {base!r} failed ({result.get('description', 'error')}): "
                f"check {what} and the account bendi searches with."
            )
        entries = []
        for item in conn.response or ():
            if item.get("type") != "searchResEntry":
                continue  # referrals (Active Directory sends many) are not followed
            raw = item.get("raw_attributes") or {}
            found = {str(k).lower(): tuple(_text(v) for v in values) for k, values in raw.items()}
            entries.append(_Entry(str(item["dn"]), found))
        return entries

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """Socket-level failures become one LdapUnavailableError that says what to check."""
        from ldap3.core import exceptions as e

        try:
            yield
        except (
            e.LDAPCommunicationError,
            e.LDAPResponseTimeoutError,
            e.LDAPStartTLSError,
            OSError,
        ) as exc:
            raise LdapUnavailableError(
                f"The LDAP server at {self._config.url} could not be reached ({exc}). Check that it runs, "
                "that BENDI_LDAP_URL is right and that this machine can reach it; local accounts can "
                "still log in."
            ) from exc


def normalize_username(username: str) -> str | None:
    """NFKC, trimmed; None for an empty, overlong or control-character name (it cannot be anyone)."""
    name = unicodedata.normalize("NFKC", username).strip()
    if not name or len(name) > MAX_USERNAME_CHARS:
        return None
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        return None
    return name


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _parse_departments(entries: Sequence[str]) -> dict[str, str]:
    """'GROUP=部门名' entries; the department is after the last '=' since a group DN has '=' too."""
    mapping: dict[str, str] = {}
    for entry in entries:
        group, sep, department = entry.rpartition("=")
        group, department = group.strip(), unicodedata.normalize("NFKC", department).strip()
        if not sep or not group or not department:
            raise UserInputError(
                f"BENDI_LDAP_GROUP_DEPARTMENTS entry {entry!r} should look like GROUP=部门名, where GROUP is "
                "the group's cn or DN."
            )
        mapping[group] = department
    return mapping


def _dn_parts(dn: str) -> list[tuple[str, str]]:
    """A DN's (attribute, value) pairs, case-folded; [] when it does not parse."""
    from ldap3.core.exceptions import LDAPInvalidDnError
    from ldap3.utils.dn import parse_dn

    try:
        return [
            (str(a).casefold(), str(v).casefold()) for a, v, _sep in parse_dn(dn, escape=False, strip=True)
        ]
    except LDAPInvalidDnError:
        return []


def _dn_key(dn: str) -> str:
    """A DN spelled one way: case-folded, no spaces around separators."""
    parts = _dn_parts(dn)
    return ",".join(f"{a}={v}" for a, v in parts) if parts else dn.strip().casefold()


def _group_key(group: str) -> tuple[str, str]:
    """How a configured group is compared: by DN when it has '=', else by cn; case-insensitively."""
    if "=" in group:
        return ("dn", _dn_key(group))
    return ("cn", group.strip().casefold())


def _keys_of(dn: str, cns: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """Every key a group answers to: its DN and its cn values (from memberOf: the DN's first RDN)."""
    keys = {("dn", _dn_key(dn))} | {("cn", cn.casefold()) for cn in cns}
    parts = _dn_parts(dn)
    if parts and parts[0][0] == "cn":
        keys.add(("cn", parts[0][1]))
    return frozenset(keys)
