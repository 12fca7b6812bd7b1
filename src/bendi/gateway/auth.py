"""Authentication and route authorization for every request, in one pure-ASGI middleware.

Who is asking: an API key (`Authorization: Bearer`, `X-Api-Key`), else the session cookie, else
nobody. Whether they may: `access.policy.authorize_route` with the matched route's template, so
the decision is one table lookup (access/route_rules.py) and a route nobody listed is refused.
Cookie-authenticated state changes also need the session's CSRF token. In team mode each request
leaves an audit record once its response has been sent. Streamed answers pass through untouched.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from typing import Any

from fastapi import FastAPI, Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bendi.access.principal import Principal
from bendi.access.route_rules import rule_for
from bendi.core.errors import AuthenticationError, BendiError, ForbiddenError
from bendi.gateway.errors import bendi_error_response

SESSION_COOKIE = "bendi_session"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Single-user mode with the legacy --api-key: the prefixes it guards, as before team mode existed.
LEGACY_PROTECTED_PREFIXES = ("/v1/", "/api/", "/metrics")
# Not worth an audit record each: liveness probes and the UI's own files.
UNAUDITED_RULES = frozenset({"public"})


def presented_key(headers: dict[str, str]) -> str:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key", "").strip()


def session_cookie(headers: dict[str, str]) -> str:
    raw = headers.get("cookie", "")
    if SESSION_COOKIE not in raw:
        return ""
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(raw)
    except Exception:  # a malformed Cookie header is the same as none
        return ""
    morsel = cookie.get(SESSION_COOKIE)
    return morsel.value if morsel else ""


def flat_routes(routes: Any) -> list[Any]:
    """Every leaf route, looking through included routers (FastAPI nests them; we include without prefix)."""
    leaves: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            leaves.extend(flat_routes(inner.routes))
        elif hasattr(route, "path_regex"):
            leaves.append(route)
    return leaves


def route_template(routes: list[Any], scope: Scope) -> str | None:
    """The path template of the route that will handle this request (None: 404 or 405 follows)."""
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(route.path)
    return None


MAX_REMEMBERED_PATHS = 4096


class Authentication:
    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._routes: list[Any] | None = None  # built on the first request, when every router is in
        # (method, path) -> route template: every request needs it, and trying each route's pattern in
        # turn is a tenth of a routed request's Python. Bounded: paths with ids, or junk, stop filling it.
        self._templates: dict[tuple[str, str], str | None] = {}

    def routes(self) -> list[Any]:
        if self._routes is None:
            self._routes = flat_routes(self.fastapi_app.routes)
        return self._routes

    def _template(self, scope: Scope) -> str | None:
        key = (scope["method"], scope["path"])
        if key in self._templates:
            return self._templates[key]
        template = route_template(self.routes(), scope)
        if len(self._templates) < MAX_REMEMBERED_PATHS:
            self._templates[key] = template
        return template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        services = self.fastapi_app.state.services
        access = services.access
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        template = self._template(scope)
        state = scope.setdefault("state", {})
        team = access.team_mode  # one read per request: `bendi admin init` elsewhere applies at once
        state["team_mode"] = team  # what the rest of this request goes by (usage, audit notes)
        try:
            if team:
                principal = self._team_principal(access, scope, headers, state)
            else:
                public = template is not None and rule_for(scope["method"], template) == "public"
                principal = self._single_principal(services.settings.api_key, public, scope, headers)
            state["principal"] = principal
            rule = access.policy.authorize_route(principal, scope["method"], template) if template else None
        except BendiError as exc:
            if template is not None and team:
                self._audit_request(state, scope, template, exc.http_status)
            await bendi_error_response(Request(scope), exc)(scope, receive, send)
            return
        if not team or rule in UNAUDITED_RULES or template is None:
            await self.app(scope, receive, send)
            return
        quiet_read = (
            scope["method"] in ("GET", "HEAD") and rule != "admin" and not services.settings.audit_reads
        )
        await self._with_audit(scope, receive, send, state, template, quiet_read)

    def _single_principal(self, legacy_key: str | None, public: bool, scope: Scope,
                          headers: dict[str, str]) -> Principal:  # fmt: skip
        """Single-user mode: the person at this machine; the legacy key, when set, guards the API."""
        if legacy_key and not public and scope["path"].startswith(LEGACY_PROTECTED_PREFIXES):
            if not hmac.compare_digest(presented_key(headers).encode(), legacy_key.encode()):
                raise AuthenticationError(
                    "Missing or wrong API key. Send 'Authorization: Bearer <key>'.", "invalid_api_key"
                )
            return Principal.legacy_key()
        return Principal.local()

    def _team_principal(self, access: Any, scope: Scope, headers: dict[str, str],
                        state: dict[str, Any]) -> Principal | None:  # fmt: skip
        key = presented_key(headers)
        if key:
            principal: Principal | None = access.authenticator.from_bearer(key)
            if principal is None:
                raise AuthenticationError(
                    "This API key is wrong, expired or revoked. Create a new one under My account.",
                    "invalid_api_key",
                )
            return principal
        cookie = session_cookie(headers)
        if not cookie:
            return None
        found = access.authenticator.from_cookie(cookie)
        if found is None:
            return None  # an ended session is the same as none: public routes still work
        principal, session = found
        state["web_session"] = session
        state["principal"] = principal  # so a refused request's audit record names whose session it was
        if scope["method"] in UNSAFE_METHODS:
            token = headers.get(CSRF_HEADER, "")
            if not token or not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
                raise ForbiddenError(
                    "This request lacks the page's security token (X-CSRF-Token); reload the page and retry."
                )
        return principal

    async def _with_audit(self, scope: Scope, receive: Receive, send: Send, state: dict[str, Any],
                          template: str, quiet_read: bool) -> None:  # fmt: skip
        """Pass the request on; record it once its response is out (a successful read only when
        settings.audit_reads is on: the UI polls, and those would bury what matters)."""
        status = 0
        written = False

        async def observe(message: Message) -> None:
            nonlocal status, written
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body") and not written:
                written = True
                if not (quiet_read and status < 400):
                    self._audit_request(state, scope, template, status)

        try:
            await self.app(scope, receive, observe)
        finally:
            if not written:  # the client left or the app failed before the last byte
                self._audit_request(state, scope, template, status or 499)

    def _audit_request(self, state: dict[str, Any], scope: Scope, template: str, status: int) -> None:
        from bendi.gateway.audit_hooks import record_request

        record_request(self.fastapi_app, state, scope, template, status)


def install_authentication(app: FastAPI) -> None:
    app.add_middleware(Authentication, fastapi_app=app)
