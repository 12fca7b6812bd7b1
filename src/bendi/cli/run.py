"""`bendi run MODEL`: chat in the terminal, or answer one prompt (--prompt or stdin) for scripts."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bendi.core.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="chat with a model in the terminal (like `ollama run`)")
    parser.add_argument("model", nargs="?", help="model name (see `bendi list`) or path to a .gguf file")
    parser.add_argument("--prompt", "-p", help="answer this prompt and exit (stdin works too)")
    parser.add_argument("--system", help="system prompt")
    parser.add_argument("--hide-thinking", action="store_true", help="do not show the reasoning chain")
    parser.add_argument(
        "--temperature", type=float, help="sampling temperature (default 0.6, or the preset's)"
    )
    parser.add_argument("--seed", type=int, help="seed for reproducible answers")
    parser.add_argument("--max-tokens", type=int, help="stop after this many tokens")
    parser.add_argument("--ctx", type=int, dest="context_tokens", help="context window in tokens")
    parser.add_argument("--threads", type=int, help="CPU threads")
    parser.add_argument("--force", action="store_true", help="load the model even if it looks too big")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from bendi.cli.chat_terminal import TerminalChat
    from bendi.cli.create import run_defaults
    from bendi.services import build_services

    settings = load_settings(
        context_tokens=args.context_tokens,
        threads=args.threads,
        parallel_sequences=1,  # one user at the terminal: no KV cache for idle parallel slots
        force_load=True if args.force else None,
    )
    services = build_services(settings)
    pool = services.engines
    model = args.model or pool.default_model_name()
    params, system, turns = run_defaults(services, model, args)  # a preset's SYSTEM, turns, PARAMETERs
    one_shot = args.prompt is not None or not sys.stdin.isatty()
    prompt = args.prompt if args.prompt is not None else (sys.stdin.read() if one_shot else "")

    if one_shot:
        if not prompt.strip():
            print("bendi: the prompt is empty. Pass --prompt TEXT or pipe text on stdin.", file=sys.stderr)
            return 2

        async def once() -> int:
            engine = await pool.acquire(model)
            chat = TerminalChat(
                engine, params, show_thinking=not args.hide_thinking, system=system, history=turns
            )
            try:
                result = await chat.answer(prompt, reasoning_to=sys.stderr)  # stdout carries only the answer
                sys.stdout.write("\n")
                return 0 if result.finished is not None else 1
            finally:
                await pool.aclose()

        return asyncio.run(once())

    loop = asyncio.new_event_loop()
    try:
        engine = loop.run_until_complete(pool.acquire(model))
    except BaseException:
        loop.run_until_complete(pool.aclose())
        loop.close()
        raise
    chat = TerminalChat(engine, params, show_thinking=not args.hide_thinking, system=system, history=turns,
                        color=sys.stdout.isatty())  # fmt: skip
    return chat.interactive(engine.info.model_name, loop, pool.aclose)
