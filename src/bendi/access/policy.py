"""Policy: the one place that decides whether a principal may do something, route and object alike.

The gateway asks `authorize_route` for every request; the knowledge and conversation layers take
the scope values decided here (`readable_kbs`, `conversation_owner`) as required arguments.
"""

from __future__ import annotations

from typing import Literal

from bendi.access.grants import Grants
from bendi.access.principal import Principal
from bendi.access.route_rules import PASSWORD_CHANGE_ROUTES, Rule, rule_for
from bendi.access.scope import KbScope
from bendi.core.errors import AuthenticationError, ForbiddenError

KbRight = Literal["read", "write", "manage"]
_RANK = {"read": 1, "write": 2, "manage": 3}


class Policy:
    def __init__(self, grants: Grants, *, admin_reads_conversations: bool = False) -> None:
        self._grants = grants
        self.admin_reads_conversations = admin_reads_conversations

    # --- routes -------------------------------------------------------------------------------
    def authorize_route(self, principal: Principal | None, method: str, path_template: str) -> Rule:
        """The route's rule when `principal` may call it; raises 401 (who are you) or 403 (not you)."""
        rule = rule_for(method, path_template)
        if rule == "public":
            return rule
        if principal is None:
            raise AuthenticationError(
                "Sign in, or send an API key as 'Authorization: Bearer <key>'.", "authentication_required"
            )
        if rule is None:  # default deny: a route nobody decided about is nobody's
            raise ForbiddenError(f"No access rule covers {method} {path_template}; it is refused.")
        if principal.must_change_password and (method, path_template) not in PASSWORD_CHANGE_ROUTES:
            raise ForbiddenError("Change your one-time password first (POST /v1/auth/password).")
        if not self.rule_allows(principal, rule):
            raise ForbiddenError(_refusal(principal, rule))
        return rule

    @staticmethod
    def rule_allows(principal: Principal, rule: Rule) -> bool:
        if rule in ("public", "signed_in"):
            return True
        if rule == "account":
            return principal.kind != "user" or principal.key_id is None or principal.is_admin
        if rule == "inference":
            return principal.may("inference")
        if rule == "kb:write":
            return principal.may("kb:write")
        return principal.is_admin

    # --- knowledge bases ----------------------------------------------------------------------
    def readable_kbs(self, principal: Principal) -> KbScope:
        if principal.kind != "user" or principal.is_admin:
            return KbScope.everything()
        assert principal.user_id is not None
        return KbScope.only(self._grants.permissions_for(principal.user_id, principal.departments))

    def kb_right(self, principal: Principal, kb: str) -> KbRight | None:
        """The strongest thing `principal` may do to base `kb`: manage (owner, admin), write, read, or None."""
        if principal.kind != "user" or principal.is_admin:
            return "manage"
        assert principal.user_id is not None
        if self._grants.owner(kb) == principal.user_id:
            right: KbRight | None = "manage"
        else:
            right = self._grants.permissions_for(principal.user_id, principal.departments).get(kb)
        if right in ("write", "manage") and not principal.may("kb:write"):
            return "read"  # an inference-scope key only reads, whatever its user may do
        return right

    def require_kb(self, principal: Principal, kb: str, need: KbRight) -> None:
        """For bases the caller can already see (looked up through `readable_kbs`): 403 when `need`
        is more than they have. Invisible bases never get here: the lookup said 404."""
        right = self.kb_right(principal, kb)
        if right is None or _RANK[right] < _RANK[need]:
            what = {"read": "read", "write": "change documents of", "manage": "manage access to or delete"}[
                need
            ]
            raise ForbiddenError(
                f"You may not {what} knowledge base {kb}; ask its owner or an administrator."
            )

    def may_create_kb(self, principal: Principal) -> bool:
        return principal.may("kb:write") and (
            principal.kind != "user" or principal.role in ("admin", "kb-editor")
        )

    # --- conversations ------------------------------------------------------------------------
    def conversation_owner(self, principal: Principal) -> str | None:
        """Whose conversations `principal` sees: their own; None (everyone's) only for administrators
        where the organization turned on admin_reads_conversations."""
        if principal.is_admin and principal.kind == "user" and self.admin_reads_conversations:
            return None
        return principal.owner_id


def _refusal(principal: Principal, rule: Rule) -> str:
    if rule == "admin":
        return "Only administrators may do this."
    if rule == "account":
        return "Manage keys and passwords from a signed-in session (or with an admin key)."
    if principal.key_id is not None:
        return f"This API key's scope does not allow this (it needs '{rule}'); create a key with that scope."
    return "You may not do this."
