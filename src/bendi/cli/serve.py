"""`bendi serve`: the OpenAI/Ollama-compatible API (and web UI) on this machine."""

from __future__ import annotations

import argparse
from typing import Any

from bendi.cli.serving import (
    add_server_arguments,
    check_exposure,
    public_base_url,
    serve,
    settings_from_args,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the API on 127.0.0.1:11435 (models load on first use)"
    )
    add_server_arguments(parser)
    parser.add_argument("--model", help="load this model at start (otherwise models load on first request)")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    check_exposure(settings, args.insecure_public)
    preload = (args.model,) if args.model else ()
    return serve(
        settings, preload=preload, banner=f"bendi is serving at {public_base_url(settings)} (Ctrl-C stops)"
    )
