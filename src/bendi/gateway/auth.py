"""API-key check: with settings.api_key set, every API call needs `Authorization: Bearer <key>`."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

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


def install_api_key_check(app: FastAPI, api_key: str | None) -> None:
    if not api_key:
        return
    expected = api_key.encode()

    @app.middleware("http")
    async def _require_key(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if path in OPEN_PATHS or not path.startswith(PROTECTED_PREFIXES) or request.method == "OPTIONS":
            return await call_next(request)
        if not hmac.compare_digest(_presented_key(request).encode(), expected):
            return error_response(request, "Missing or wrong API key. Send 'Authorization: Bearer <key>'.",
                                  status=401, code="invalid_api_key", error_type="authentication_error")  # fmt: skip
        return await call_next(request)
