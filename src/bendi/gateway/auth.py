"""API-key check: with settings.api_key set, every API call needs `Authorization: Bearer <key>`."""

from __future__ import annotations

import hmac

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from bendi.gateway.errors import error_response

# Open without a key: liveness for load balancers, and the web UI's static files (the UI then
# sends the key it is given with every API call).
OPEN_PATHS = ("/health",)
PROTECTED_PREFIXES = ("/v1/", "/api/", "/metrics")


def _presented_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key", "")


class _ApiKeyCheck:
    """Pure ASGI middleware, so streamed answers pass through untouched."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            protected = (
                path not in OPEN_PATHS
                and path.startswith(PROTECTED_PREFIXES)
                and scope["method"] != "OPTIONS"
            )
            request = Request(scope)
            if protected and not hmac.compare_digest(_presented_key(request).encode(), self.expected):
                response = error_response(request, "Missing or wrong API key. Send 'Authorization: Bearer <key>'.",
                                          status=401, code="invalid_api_key", error_type="authentication_error")  # fmt: skip
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_api_key_check(app: FastAPI, api_key: str | None) -> None:
    if api_key:
        app.add_middleware(_ApiKeyCheck, api_key=api_key)
