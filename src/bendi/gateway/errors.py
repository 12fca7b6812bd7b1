"""Map every error to the caller's dialect: OpenAI-shaped on /v1, Ollama-shaped on /api, never a 500
for a client's mistake."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from bendi.core.errors import BendiError, OverloadedError

log = logging.getLogger("bendi.gateway")

_STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "invalid_request_error", 405: "invalid_request_error", 409: "invalid_request_error",
                 413: "invalid_request_error", 429: "rate_limit_error"}  # fmt: skip
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def error_payload(path: str, message: str, *, status: int, code: str, error_type: str | None = None,
                  param: str | None = None) -> dict[str, Any]:  # fmt: skip
    if path.startswith("/api/"):
        return {"error": message}
    kind = error_type or _STATUS_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


def error_response(request: Request, message: str, *, status: int, code: str, error_type: str | None = None,
                   param: str | None = None, retry_after_s: float | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:  # fmt: skip
    sent = dict(headers or {})
    if retry_after_s is not None:
        # Rounded up: a client that waits exactly Retry-After must find the wait over.
        sent["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    body = error_payload(
        request.url.path, message, status=status, code=code, error_type=error_type, param=param
    )
    return JSONResponse(body, status_code=status, headers=sent or None)


def bendi_error_response(request: Request, exc: BendiError) -> JSONResponse:
    retry = exc.retry_after_s if isinstance(exc, OverloadedError) else None
    return error_response(request, exc.message, status=exc.http_status, code=exc.code, error_type=exc.error_type,
                          retry_after_s=retry)  # fmt: skip


def _describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "The request body is invalid.", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON. Check quoting and commas.", None
    if tuple(first.get("loc", ())) == ("body",):
        return "The request body must be a JSON object (send Content-Type: application/json).", None
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(loc) or None
    where = f" in '{field}'" if field else ""
    return f"Invalid request{where}: {first.get('msg', 'invalid value')}.", field


def allowed_methods(request: Request) -> list[str]:
    """The methods some route answers at this request's path."""
    routes = request.app.router.routes
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)]  # fmt: skip


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BendiError)
    async def _bendi(request: Request, exc: BendiError) -> JSONResponse:
        if exc.http_status >= 500:
            log.warning("request failed: %s", exc.code)
        return bendi_error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, field = _describe_validation(exc)
        return error_response(request, message, status=400, code="invalid_request", param=field)

    @app.exception_handler(json.JSONDecodeError)
    async def _bad_json(request: Request, exc: json.JSONDecodeError) -> JSONResponse:
        return error_response(request, f"The request body is not valid JSON: {exc.msg}.", status=400,
                              code="invalid_json")  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = f"No such endpoint: {request.method} {request.url.path}."
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: a 405 lists in `Allow` every method the resource supports. Starlette's router
            # names only the methods of the first route that matched the path, not of all of them.
            headers["Allow"] = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
            if message == "Method Not Allowed":
                message = f"{request.method} is not allowed on {request.url.path}; use {headers['Allow']}."
        return error_response(request, message, status=exc.status_code, code=code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(request, "Internal error in bendi; see the server log.", status=500,
                              code="internal_error")  # fmt: skip
