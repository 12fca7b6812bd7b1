"""AccessControl: the access layer's parts built once from Settings (the Services object holds one)."""

from __future__ import annotations

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


class AccessControl:
    def __init__(self, settings: Settings, paths: DataPaths) -> None:
        self.settings = settings
        self.paths = paths

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
        """Read from the database on every call: `bendi admin init` in another process takes effect at once."""
        if not self.paths.access_db.exists():
            return False
        return self.db.get_meta(TEAM_MODE_KEY) == "1"

    def init_team(self, username: str, password: str | None) -> tuple[User, str | None]:
        """Switch to team mode with a first administrator; returns them and a generated password if any.

        Conversations made in single-user mode become theirs (gateway/services move them)."""
        if self.team_mode or self.accounts.count_admins() > 0:
            raise UserInputError(
                "Team mode is on already. Add administrators with `bendi admin user add NAME --role admin`."
            )
        user, generated = self.accounts.create_user(username, role="admin", password=password)
        self.db.set_meta(TEAM_MODE_KEY, "1")
        return user, generated

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
