"""`bendi bundle create|verify|import-models`: the offline install bundle, from the terminal."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bendi.core.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bundle", help="offline install bundle: create one, verify one before carrying it in"
    )
    commands = parser.add_subparsers(dest="bundle_command", metavar="SUBCOMMAND", required=True)

    p = commands.add_parser(
        "create", help="write one archive with bendi, every dependency's wheel and the chosen models"
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="the archive to write (.tar.gz)")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME",
        help="an installed model to carry (repeatable)",
    )
    p.add_argument(
        "--platform", help="target OS-architecture: linux-x86_64 or linux-aarch64 (default: this machine)"
    )
    p.add_argument("--python", help="target Python major.minor, e.g. 3.11 (default: this interpreter's)")
    p.add_argument(
        "--with-demo-data", action="store_true", help="create the demo knowledge base on the target"
    )
    p.add_argument(
        "--cuda", action="store_true", help="require a CUDA build of llama.cpp (see --llama-wheel)"
    )
    p.add_argument(
        "--llama-wheel", type=Path, help="the llama_cpp_python wheel to carry (default: the cached build)"
    )
    p.set_defaults(func=handle_create)

    p = commands.add_parser(
        "verify", help="check every file of a bundle (archive or unpacked folder) against its hashes"
    )
    p.add_argument("file", type=Path, help="bendi-offline.tar.gz or an unpacked bendi-offline folder")
    p.set_defaults(func=handle_verify)

    p = commands.add_parser(
        "import-models", help="import an unpacked bundle's models into the store (install.sh runs it)"
    )
    p.add_argument("folder", type=Path, help="the unpacked bendi-offline folder")
    p.set_defaults(func=handle_import_models)


_START_S = time.monotonic()


def _say(message: str) -> None:
    print(f"  [{time.monotonic() - _START_S:5.1f} s] {message}", file=sys.stderr, flush=True)


def handle_create(args: argparse.Namespace) -> int:
    from bendi.ops.bundle_create import BundleRequest, create_bundle
    from bendi.ops.bundle_wheels import check_target

    request = BundleRequest(
        output=args.output,
        models=tuple(args.model),
        target=check_target(args.platform, args.python),
        with_demo_data=args.with_demo_data,
        cuda=args.cuda,
        llama_wheel=args.llama_wheel,
    )
    created = create_bundle(load_settings(), request, progress=_say)
    m = created.manifest
    print(f"Wrote {created.path} ({created.size_bytes / 1e6:.1f} MB): bendi {m.bendi_version} for {m.platform}, "
          f"Python {m.python}, glibc {m.min_glibc or 'any'}+, {sum(p.startswith('wheels/') for p in m.files)} wheels, "
          f"models: {', '.join(x.name for x in m.models) or 'the built-in smollm2:135m'}.")  # fmt: skip
    print(f"sha256 {created.sha256}  (also in {created.path.name}.sha256)")
    for note in created.notes:
        print(f"note: {note}")
    print(f"On the target: tar xzf {created.path.name} && bash bendi-offline/install.sh")
    return 0


def handle_verify(args: argparse.Namespace) -> int:
    from bendi.ops.bundle_verify import verify_bundle

    report = verify_bundle(args.file)
    for problem in report.problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    if report.archive_sha256:
        print(f"archive sha256 {report.archive_sha256}")
    if not report.ok:
        print(f"{args.file}: the bundle is NOT intact; do not install it.", file=sys.stderr)
        return 1
    assert report.manifest is not None
    m = report.manifest
    print(f"{args.file}: OK, {report.files_checked} files intact. bendi {m.bendi_version} for {m.platform}, "
          f"Python {m.python}, glibc {m.min_glibc or 'any'}+; models: "
          f"{', '.join(x.name for x in m.models) or 'the built-in smollm2:135m'}.")  # fmt: skip
    return 0


def handle_import_models(args: argparse.Namespace) -> int:
    from bendi.ops.bundle_import import import_bundle_models

    names = import_bundle_models(load_settings(), args.folder, progress=_say)
    print(
        f"Models from the bundle in the store: {', '.join(names) or 'none (the built-in smollm2:135m is always there)'}."
    )
    return 0
