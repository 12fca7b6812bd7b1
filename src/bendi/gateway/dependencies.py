"""Typed access to the Services object from route handlers."""

from __future__ import annotations

from fastapi import Request

from bendi.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def client_id(request: Request) -> str:
    """Who is asking, for quotas and logs: the API key's fingerprint, else the peer address."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and len(auth) > 7:
        import hashlib

        return "key:" + hashlib.sha256(auth[7:].encode()).hexdigest()[:12]
    return "ip:" + (request.client.host if request.client else "unknown")
