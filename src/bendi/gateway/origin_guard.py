"""Refuse requests for foreign Host names (DNS rebinding) and foreign Origins, and answer CORS."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from bendi.core.errors import UserInputError
from bendi.core.settings import Settings
from bendi.gateway.errors import error_response

# Methods that change something: a foreign web page must not make a browser send them here.
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_WEB_SCHEMES = {"ws": "http", "wss": "https"}


def split_host(value: str) -> tuple[str, int | None] | None:
    """'Name:port', '[v6]:port' or a bare name -> (lower-case name, port); None when malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    elif value.count(":") == 1:
        name, port_text = value.split(":")
    else:  # a bare name, or a bare IPv6 address (not valid in Host, but unambiguous)
        name, port_text = value, ""
    if port_text and not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        return None
    return name.lower().rstrip("."), int(port_text) if port_text else None


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_loopback_peer(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def normalize_origin(origin: str) -> str | None:
    """'HTTPS://App.Example.org/' -> 'https://app.example.org'; None for anything but scheme://host[:port]."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard accepts, computed once at start so each request costs a few set lookups."""

    server_names: frozenset[str]  # lower-case names besides IP literals
    cors_origins: frozenset[str]  # normalized origins allowed to call from a browser

    def host_refusal(self, host: str | None, scope: Scope) -> str | None:
        if not host:
            if _is_loopback_peer(scope):
                return None
            return "The request has no Host header. Send one (every HTTP/1.1 client does)."
        parsed = split_host(host)
        if parsed is not None and (parsed[0] in self.server_names or is_ip_literal(parsed[0])):
            return None
        name = (parsed[0] if parsed else host)[:100]
        return (
            f"This server does not answer to the name '{name}'. If that is a name of this machine, add it "
            "to BENDI_SERVER_NAMES (comma-separated, or server_names in config.toml) and restart bendi."
        )

    def origin_refusal(self, origin: str, host: str | None, scope: Scope) -> str | None:
        normalized = normalize_origin(origin)
        if normalized is not None and (
            normalized in self.cors_origins or _same_origin(normalized, host, scope)
        ):
            return None
        return (
            f"Requests from the web page at {origin[:100]} are not allowed here. To let a web app on that "
            "origin call this server, add it to BENDI_CORS_ORIGINS and restart bendi."
        )


def _same_origin(origin: str, host: str | None, scope: Scope) -> bool:
    """Scheme, host and port of the Origin are those the request itself came in on."""
    parsed = split_host(host or "")
    if parsed is None or not parsed[0]:
        return False
    scheme = str(scope.get("scheme", "http"))
    scheme = _WEB_SCHEMES.get(scheme, scheme)
    port = parsed[1] if parsed[1] is not None else DEFAULT_PORTS.get(scheme)
    parts = urlsplit(origin)
    origin_port = parts.port if parts.port is not None else DEFAULT_PORTS.get(parts.scheme)
    return (parts.scheme, parts.hostname, origin_port) == (scheme, parsed[0], port)


def guard_policy(settings: Settings) -> GuardPolicy:
    names = {"localhost", socket.gethostname(), socket.getfqdn()}
    if settings.host not in ("0.0.0.0", "::", ""):  # a name given to --host is one of ours too
        names.add(settings.host)
    for entry in settings.server_names:
        parsed = split_host(entry)
        if parsed is None or not parsed[0]:
            raise UserInputError(f"'{entry}' in BENDI_SERVER_NAMES is not a host name. Use names like bendi.example.org.")  # fmt: skip
        names.add(parsed[0])
    origins = set()
    for entry in settings.cors_origins:
        normalized = normalize_origin(entry)
        if normalized is None:  # '*' lands here too: any site could then drive this server
            raise UserInputError(
                f"'{entry}' in BENDI_CORS_ORIGINS is not a web origin. List each site that may call bendi "
                "from a browser as scheme://host[:port], e.g. https://app.example.org ('*' is not allowed)."
            )
        origins.add(normalized)
    return GuardPolicy(
        server_names=frozenset(name.lower().rstrip(".") for name in names if name),
        cors_origins=frozenset(origins),
    )


class _OriginGuard:
    """Pure ASGI middleware, so streamed answers pass through untouched."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = origin = None
            for key, value in scope["headers"]:
                if key == b"host":
                    host = value.decode("latin-1")
                elif key == b"origin":
                    origin = value.decode("latin-1")
            code, message = "host_not_allowed", self.policy.host_refusal(host, scope)
            # A browser sends no CORS preflight for WebSockets: their Origin is always checked.
            if (
                message is None
                and origin is not None
                and (scope["type"] == "websocket" or scope["method"] in STATE_CHANGING)
            ):
                code, message = "origin_not_allowed", self.policy.origin_refusal(origin, host, scope)
            if message is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                response = error_response(Request(scope), message, status=403, code=code)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_origin_guard(app: FastAPI, settings: Settings) -> None:
    """The Host/Origin guard, outside CORS (settings.cors_origins only), so CORS never answers a
    request the guard refuses. Bearer keys only: CORS never allows credentials (cookies)."""
    policy = guard_policy(settings)
    if policy.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=sorted(policy.cors_origins),
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["*"],  # the OpenAI SDKs send Authorization plus their own X-Stainless-* headers
            expose_headers=["Retry-After"],
            max_age=600,
        )
    app.add_middleware(_OriginGuard, policy=policy)
