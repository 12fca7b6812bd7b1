"""`bendi` command: builds the argument parser from one module per command and dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bendi import __version__
from bendi.core.errors import BendiError

# Each module defines `register(subparsers)`, which adds its command(s) and sets `func=handler`
# (handler(args) -> int exit code). Order is the order shown in --help.
COMMAND_MODULES = (
    "bendi.cli.up",
    "bendi.cli.run",
    "bendi.cli.serve",
    "bendi.cli.pull",
    "bendi.cli.models",
    "bendi.cli.create",
    "bendi.cli.bench",
    "bendi.cli.kb",
    "bendi.cli.eval",
    "bendi.cli.tune",
    "bendi.cli.admin",
    "bendi.cli.doctor",
    "bendi.cli.plan",
    "bendi.cli.cluster",
    "bendi.cli.backup",
    "bendi.cli.service",
    "bendi.cli.bundle",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bendi",
        description="本地 bendi — run DeepSeek on your own hardware. Nothing leaves this machine.",
    )
    parser.add_argument("--version", action="version", version=f"bendi {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        code: int = args.func(args)
        return code
    except BendiError as exc:
        print(f"bendi: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bendi admin audit list | head`: the reader left, which is fine
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
