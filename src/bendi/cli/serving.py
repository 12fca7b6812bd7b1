"""Run the HTTP server for `bendi serve` and `bendi up`: settings from flags, secure host check."""

from __future__ import annotations

import argparse
import ipaddress
import ssl
import sys
from pathlib import Path

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
    parser.add_argument(
        "--tls-cert", type=Path, help="serve HTTPS with this PEM certificate (chain); env BENDI_TLS_CERT"
    )
    parser.add_argument(
        "--tls-key", type=Path, help="the certificate's unencrypted PEM private key; env BENDI_TLS_KEY"
    )
    parser.add_argument(
        "--engine",
        choices=("auto", "llama.cpp", "vllm", "sglang"),
        help="auto follows the advisor: HF-format weights on vLLM/SGLang on data-center GPUs, else the GGUF on "
        "llama.cpp; or force one (env BENDI_ENGINE; per model in the config file; docs/engines.md)",
    )
    parser.add_argument(
        "--draft",
        metavar="MODEL",
        help="a small model of the same tokenizer that proposes tokens for the served models, verified by "
        "them (speculative decoding: same answers, sooner); env BENDI_DRAFT_MODEL (docs/engine.md)",
    )
    parser.add_argument(
        "--upstream",
        action="append",
        metavar="MODEL=URL",
        help="serve MODEL by a replica at URL (another bendi, vLLM, SGLang or llama-server); repeat with the "
        "same MODEL for more replicas, URL 'local' for this bendi's own engine (docs/engines.md, Replicas)",
    )
    parser.add_argument(
        "--upstreams-file",
        type=Path,
        help="TOML file of [[replica]] tables (model, url, api_key, model_id); env BENDI_UPSTREAMS_FILE",
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
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        engine=getattr(args, "engine", None),
        draft_model=getattr(args, "draft", None),
        upstreams=tuple(args.upstream) if getattr(args, "upstream", None) else None,
        upstreams_file=getattr(args, "upstreams_file", None),
    )


def public_base_url(settings: Settings) -> str:
    """settings.base_url, with https when bendi serves TLS itself."""
    url = settings.base_url
    return "https://" + url.removeprefix("http://") if settings.tls_cert else url


class _EncryptedKey(Exception):
    """OpenSSL asked for a passphrase: the key file is encrypted."""


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal, which a service cannot answer.
    raise _EncryptedKey


def check_tls(settings: Settings) -> None:
    """Both TLS files or neither; readable, PEM, and the key belongs to the certificate."""
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and key is None:
        return
    if cert is None or key is None:
        given, missing = ("--tls-cert", "--tls-key") if cert else ("--tls-key", "--tls-cert")
        raise UserInputError(
            f"{given} needs {missing} too: HTTPS needs the certificate and its private key "
            "(or set both BENDI_TLS_CERT and BENDI_TLS_KEY)."
        )
    for what, path in (("certificate", cert), ("private key", key)):
        try:
            with open(path, "rb") as file:
                file.read(1)
        except OSError as exc:
            raise UserInputError(
                f"Cannot read the TLS {what} file {path}: {exc.strerror or exc}. Check the path and that "
                "the user running bendi may read it."
            ) from exc
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _EncryptedKey:
        raise UserInputError(
            f"The TLS private key {key} is protected by a passphrase, which bendi cannot ask for. Store it "
            "unencrypted (openssl pkey -in KEY -out PLAIN_KEY) and protect the file with permissions (chmod 600)."
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise UserInputError(
                f"The TLS private key {key} does not belong to the certificate {cert}. Give the key that "
                "was made together with this certificate."
            ) from exc
        raise UserInputError(
            f"Cannot use {cert} and {key} for HTTPS ({exc.reason or exc}). --tls-cert must be a PEM "
            "certificate (chain) and --tls-key its PEM private key."
        ) from exc


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, insecure_public: bool) -> None:
    """Secure default: nothing reachable from the network without sign-in or a key.

    The first start on a non-loopback address switches to team mode (accounts, every request signed
    in) and prints the first administrator's one-time password here, in the operator's terminal."""
    if is_loopback(settings.host) or settings.api_key:
        return
    from bendi.services import build_services

    services = build_services(settings)
    if services.access.team_mode:
        return
    if insecure_public:
        print(f"WARNING: serving {settings.host} with no sign-in and no API key (--insecure-public): anyone "
              "who can reach this machine can use its models and documents.", file=sys.stderr)  # fmt: skip
        return
    user, password = services.init_team("admin", None)
    print(
        f"bendi is listening beyond this machine ({settings.host}), so it switched to team mode: every request "
        f"needs a sign-in or an API key.\n  First administrator: {user.username}\n  One-time password: "
        f"{password}   (shown only now; you will be asked to change it at first sign-in)\n"
        "  Add people with `bendi admin user add NAME`. (To serve one person with a key instead: --api-key KEY.)",
        file=sys.stderr, flush=True,
    )  # fmt: skip


def serve(settings: Settings, *, preload: tuple[str, ...], banner: str) -> int:
    import uvicorn

    from bendi.core.logs import configure_logging
    from bendi.gateway.app import create_app
    from bendi.gateway.nodelay import http_protocol
    from bendi.gateway.shutdown import DrainingServer
    from bendi.services import build_services

    check_tls(settings)  # before anything binds or loads: a wrong file is a sentence and exit 1
    from bendi.engines.remote import upstream_specs

    upstream_specs(settings)  # a malformed --upstream or upstreams file: a sentence and exit 1, now
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
        http=http_protocol(),  # Nagle off, also under TLS: it finds the TCP socket beneath the SSL transport
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )
    server = DrainingServer(config, app, settings.shutdown_grace_s)
    server.run()
    return 0 if server.started else 1
