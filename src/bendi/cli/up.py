"""`bendi up`: pick the best installed model, load it, serve it, and show how to use it."""

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
    parser = subparsers.add_parser("up", help="start bendi with the best installed model (works offline)")
    add_server_arguments(parser)
    parser.add_argument("--model", help="serve this model instead of the best installed one")
    parser.set_defaults(func=handle)


def usage_banner(base_url: str, model: str) -> str:
    return f"""
bendi is up: {model} at {base_url}   (Ctrl-C stops)

  curl {base_url}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "你好"}}]}}'

  from openai import OpenAI
  client = OpenAI(base_url="{base_url}/v1", api_key="bendi")
  print(client.chat.completions.create(model="{model}",
        messages=[{{"role": "user", "content": "你好"}}]).choices[0].message.content)
"""


def handle(args: argparse.Namespace) -> int:
    from bendi.core.paths import DataPaths
    from bendi.engines.pool import EnginePool

    settings = settings_from_args(args)
    check_exposure(settings, args.insecure_public)
    model = args.model or EnginePool(settings, DataPaths(settings.home).ensure()).default_model_name()
    return serve(settings, preload=(model,), banner=usage_banner(public_base_url(settings), model))
