"""Per-user and per-key quotas (requests per minute, tokens per day), checked before admission."""

from __future__ import annotations

from fastapi import Request

from bendi.access.principal import Principal
from bendi.services import Services


def check_quota(request: Request, services: Services) -> None:
    """Raise 429 with Retry-After when the caller is over a limit; nothing to check in single-user mode.

    A limit set on the key wins over the user's, which wins over the server-wide default."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal) or principal.user_id is None:
        return
    settings = services.settings
    rpm = settings.quota_requests_per_minute or None
    tpd = settings.quota_tokens_per_day or None
    access = services.access
    user = access.accounts.user(principal.user_id)
    rpm = user.requests_per_minute or rpm
    tpd = user.tokens_per_day or tpd
    if principal.key_id is not None:
        key = access.keys.get(principal.key_id)
        rpm = key.requests_per_minute or rpm
        tpd = key.tokens_per_day or tpd
    if rpm is None and tpd is None:
        return
    from bendi.access.usage import QuotaLimits

    access.quotas.admit(principal.user_id, principal.key_id, QuotaLimits(rpm, tpd))
