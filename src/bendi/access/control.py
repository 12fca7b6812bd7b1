"""AccessControl: the access layer's parts built once from Settings (the Services object holds one)."""

from __future__ import annotations

import os
import time
from functools import cached_property
from typing import TYPE_CHECKING

from bendi.access.accounts import Accounts, User
from bendi.access.authenticate import Authenticator
from bendi.access.db import AccessDB
from bendi.access.grants import Grants
from bendi.access.keys import ApiKeys
from bendi.access.policy import Policy
from bendi.access.sessions import Sessions
from bendi.access.throttle import LoginThrottle
from bendi.core.errors import UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings

if TYPE_CHECKING:
    from bendi.access.audit import AuditLog
    from bendi.access.usage import QuotaGate, UsageLedger

TEAM_MODE_KEY = "team_mode"
# A team_mode answer is reused while the access database's files look unchanged, for at most this long
# (file times are coarse: a change within one clock tick that keeps the WAL's size is caught by this).
TEAM_MODE_RECHECK_S = 0.5


class AccessControl:
    def __init__(self, settings: Settings, paths: DataPaths) -> None:
        self.settings = settings
        self.paths = paths
        self._db_file = str(paths.access_db)
        self._team_mode_seen: tuple[object, float, bool] | None = None  # (files' stamp, when, answer)

    @cached_property
    def db(self) -> AccessDB:
        return AccessDB(self.paths.access_db)

    @cached_property
    def accounts(self) -> Accounts:
        return Accounts(self.db, min_password_chars=self.settings.min_password_chars)

    @cached_property
    def keys(self) -> ApiKeys:
        return ApiKeys(self.db)

    @cached_property
    def sessions(self) -> Sessions:
        return Sessions(self.db, idle_s=self.settings.session_idle_minutes * 60.0,
                        max_age_s=self.settings.session_max_hours * 3600.0)  # fmt: skip

    @cached_property
    def grants(self) -> Grants:
        return Grants(self.db)

    @cached_property
    def policy(self) -> Policy:
        return Policy(self.grants, admin_reads_conversations=self.settings.admin_reads_conversations)

    @cached_property
    def authenticator(self) -> Authenticator:
        from bendi.access.ldap import LdapConfig, LdapDirectory

        config = LdapConfig.from_settings(self.settings)
        return Authenticator(self.accounts, self.keys, self.sessions, LoginThrottle(),
                             legacy_key=self.settings.api_key, ldap=LdapDirectory(config) if config else None)  # fmt: skip

    @cached_property
    def audit(self) -> AuditLog:
        from bendi.access.audit import AuditLog

        return AuditLog(self.paths.audit_db, retention_days=self.settings.audit_retention_days)

    @cached_property
    def usage(self) -> UsageLedger:
        from bendi.access.usage import UsageLedger

        return UsageLedger(self.paths.usage_db)

    @cached_property
    def quotas(self) -> QuotaGate:
        from bendi.access.usage import QuotaGate

        return QuotaGate(self.usage)

    @property
    def team_mode(self) -> bool:
        """Read again whenever the database's files change: `bendi admin init` in another process takes
        effect at once. Every request asks (two or three times), so an unchanged answer costs two stats."""
        stamp = self._files_stamp()
        now = time.monotonic()
        seen = self._team_mode_seen
        if seen is not None and seen[0] == stamp and now - seen[1] < TEAM_MODE_RECHECK_S:
            return seen[2]
        answer = stamp is not None and self.db.get_meta(TEAM_MODE_KEY) == "1"
        self._team_mode_seen = (stamp, now, answer)
        return answer

    def _files_stamp(self) -> tuple[tuple[int, int, int], ...] | None:
        """The database file's and its write-ahead log's identity, size and time; None with no database."""
        stamps = []
        for path in (self._db_file, self._db_file + "-wal"):
            try:
                info = os.stat(path)
            except FileNotFoundError:
                if path == self._db_file:
                    return None
                continue
            stamps.append((info.st_ino, info.st_size, info.st_mtime_ns))
        return tuple(stamps)

    def init_team(self, username: str, password: str | None) -> tuple[User, str | None]:
        """Switch to team mode with a first administrator; returns them and a generated password if any.

        Conversations made in single-user mode become theirs (gateway/services move them)."""
        if self.team_mode or self.accounts.count_admins() > 0:
            raise UserInputError(
                "Team mode is on already. Add administrators with `bendi admin user add NAME --role admin`."
            )
        user, generated = self.accounts.create_user(username, role="admin", password=password)
        self.db.set_meta(TEAM_MODE_KEY, "1")
        self._team_mode_seen = None
        return user, generated

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
