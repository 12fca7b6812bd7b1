"""Run the HTTP server for `bendi serve` and `bendi up`: settings from flags, secure host check."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from bendi.core.errors import UserInputError
from bendi.core.settings import Settings, load_settings


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; env BENDI_HOST)")
    parser.add_argument("--port", type=int, help="port (default 11435; env BENDI_PORT)")
    parser.add_argument(
        "--ctx", type=int, dest="context_tokens", help="context window per request, in tokens"
    )
    parser.add_argument("--threads", type=int, help="CPU threads for llama.cpp (default: physical cores)")
    parser.add_argument("--parallel", type=int, dest="parallel_sequences", help="requests decoded together")
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every API call")
    parser.add_argument("--force", action="store_true", help="load the model even if it looks too big")
    parser.add_argument(
        "--insecure-public",
        action="store_true",
        help="allow listening on a non-loopback address without an API key (anyone on the network can use it)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    return load_settings(
        host=args.host,
        port=args.port,
        context_tokens=args.context_tokens,
        threads=args.threads,
        parallel_sequences=args.parallel_sequences,
        api_key=args.api_key,
        force_load=True if args.force else None,
    )


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, insecure_public: bool) -> None:
    """Secure default: nothing reachable from the network without a key, unless asked for explicitly."""
    if is_loopback(settings.host) or settings.api_key or insecure_public:
        return
    raise UserInputError(
        f"Refusing to listen on {settings.host} without an API key: anyone on your network could use this "
        "machine's models. Set one with --api-key KEY (or BENDI_API_KEY), or pass --insecure-public if "
        "that is really what you want."
    )


def serve(settings: Settings, *, preload: tuple[str, ...], banner: str) -> int:
    import uvicorn

    from bendi.core.logs import configure_logging
    from bendi.gateway.app import create_app
    from bendi.gateway.nodelay import NoDelayH11Protocol
    from bendi.gateway.shutdown import DrainingServer
    from bendi.services import build_services

    configure_logging(settings.log_level, settings.log_format)

    services = build_services(settings)
    app = create_app(services, preload=preload)
    print(banner, file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        access_log=False,
        http=NoDelayH11Protocol,
    )
    server = DrainingServer(config, app, settings.shutdown_grace_s)
    server.run()
    return 0 if server.started else 1
