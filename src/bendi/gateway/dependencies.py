"""Typed access to the Services object from route handlers."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

from bendi.access.principal import Principal
from bendi.access.scope import KbScope
from bendi.services import Services

_FINGERPRINT_SALT = secrets.token_bytes(16)  # per process: quotas are in memory, so nothing is lost


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a thread hop on every request.
    services: Services = request.app.state.services
    return services


def client_id(request: Request) -> str:
    """Who is asking, for per-client quotas and logs: the account or key, else the peer address.

    Never derived from a secret: a legacy key is fingerprinted with a per-process random salt, so a
    log line cannot be used to guess it offline."""
    principal = request.scope.get("state", {}).get("principal")
    if isinstance(principal, Principal) and principal.kind == "user":
        return f"key:{principal.key_id}" if principal.key_id else f"user:{principal.user_id}"
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and len(auth) > 7:
        return "key:" + hmac.new(_FINGERPRINT_SALT, auth[7:].encode(), hashlib.sha256).hexdigest()[:12]
    return "ip:" + (request.client.host if request.client else "unknown")


def principal_of(request: Request) -> Principal:
    """The caller, as the authentication middleware decided; single-user mode is the local owner."""
    principal = request.scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else Principal.local()


def readable_kbs(request: Request) -> KbScope:
    """The knowledge bases this caller may read: the scope every knowledge-base lookup must pass."""
    services: Services = request.app.state.services
    return services.access.policy.readable_kbs(principal_of(request))
