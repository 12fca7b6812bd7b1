"""Authenticator: credentials (API key, session cookie, username and password) -> Principal."""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bendi.access.accounts import Accounts, User, username_key
from bendi.access.keys import ApiKeys
from bendi.access.passwords import needs_rehash, verify_password
from bendi.access.principal import ALL_SCOPES, Principal
from bendi.access.sessions import Sessions, WebSession
from bendi.access.throttle import LoginThrottle
from bendi.core.errors import AuthenticationError, BendiError

if TYPE_CHECKING:
    from bendi.access.ldap import LdapDirectory

log = logging.getLogger("bendi.access")
WRONG_CREDENTIALS = "Wrong username or password."
MAX_PASSWORD_INPUT = 1024


@dataclass(frozen=True)
class Login:
    user: User
    cookie_value: str
    session: WebSession


def principal_for(user: User, *, scopes: frozenset[str] = ALL_SCOPES, key_id: str | None = None,
                  session_id: str | None = None) -> Principal:  # fmt: skip
    return Principal("user", user.id, user.username, user.role, user.department_ids, scopes, key_id, session_id,
                     must_change_password=session_id is not None and user.must_change_password)  # fmt: skip


class Authenticator:
    def __init__(self, accounts: Accounts, keys: ApiKeys, sessions: Sessions, throttle: LoginThrottle,
                 *, legacy_key: str | None, ldap: LdapDirectory | None) -> None:  # fmt: skip
        self._accounts = accounts
        self._keys = keys
        self._sessions = sessions
        self._throttle = throttle
        self._legacy = legacy_key.encode() if legacy_key else None
        self._ldap = ldap

    @property
    def ldap_enabled(self) -> bool:
        return self._ldap is not None

    def from_bearer(self, presented: str) -> Principal | None:
        if self._legacy is not None and hmac.compare_digest(presented.encode(), self._legacy):
            return Principal.legacy_key()
        resolved = self._keys.resolve(presented)
        if resolved is None:
            return None
        user = self._accounts.user(resolved.user_id)
        now = time.time()
        if resolved.key.last_used_at is None or now - resolved.key.last_used_at > 60:
            self._keys.touch(resolved.key.id, now)
        scopes = {"inference": frozenset({"inference"}), "kb:write": frozenset({"inference", "kb:write"}),
                  "admin": ALL_SCOPES}[resolved.key.scope]  # fmt: skip
        return principal_for(user, scopes=scopes, key_id=resolved.key.id)

    def from_cookie(self, cookie_value: str) -> tuple[Principal, WebSession] | None:
        session = self._sessions.resolve(cookie_value)
        if session is None:
            return None
        user = self._accounts.user(session.user_id)
        return principal_for(user, session_id=session.id), session

    def login(self, username: str, password: str, address: str) -> Login:
        """Check the password (local account, else LDAP); the same error for every kind of failure."""
        key = username_key(username)[:256]
        self._throttle.check(key, address)
        user = self._check_password(username, password) if len(password) <= MAX_PASSWORD_INPUT else None
        if user is None or user.disabled:
            self._throttle.failed(key, address)
            raise AuthenticationError(WRONG_CREDENTIALS, "invalid_credentials")
        self._throttle.succeeded(key)
        cookie, session = self._sessions.create(user.id, address)
        return Login(user, cookie, session)

    def check_current_password(self, user: User, stored: str | None, password: str, address: str) -> bool:
        """The password typed to change it, under the sign-in throttle: a stolen session must not be an
        unthrottled way to guess the account's password."""
        key = username_key(user.username)[:256]
        self._throttle.check(key, address)
        if len(password) <= MAX_PASSWORD_INPUT and verify_password(stored, password):
            return True
        self._throttle.failed(key, address)
        return False

    def _check_password(self, username: str, password: str) -> User | None:
        found = self._accounts.user_for_login(username)
        if found is not None and found[0].source == "local":
            user, stored = found
            if not verify_password(stored, password):
                return None
            if stored and needs_rehash(stored):
                self._accounts.rehash(user.id, password)
            return user
        if self._ldap is None:
            verify_password(None, password)  # same work as a wrong password: no user enumeration by timing
            return None
        identity = self._ldap.authenticate(username, password)
        if identity is None:
            return None
        try:
            return self._accounts.sync_ldap_user(identity.username, identity.display_name, identity.role,
                                                 identity.departments)  # fmt: skip
        except BendiError as exc:  # e.g. a local account of that name: refused, not merged
            log.warning("LDAP sign-in refused: %s", exc.message)
            return None
