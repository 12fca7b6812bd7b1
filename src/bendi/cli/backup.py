"""`bendi backup create|restore|verify`: a consistent copy of the data directory, and putting one back."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from bendi.core.settings import load_settings


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser("backup", help="back up the data directory while bendi serves; restore it")
    sub = backup.add_subparsers(dest="backup_command", metavar="ACTION", required=True)

    p = sub.add_parser(
        "create", help="write a backup archive (databases, knowledge bases, accounts, settings)"
    )
    p.add_argument("-o", "--output", required=True, type=Path, metavar="FILE",
                   help="the archive to write (gzip-compressed tar; a name ending in .tar is left uncompressed)")  # fmt: skip
    p.add_argument("--with-models", action="store_true", help="include the model files too (large)")
    p.add_argument("--home", type=Path, metavar="DIR", help="the data directory (default: BENDI_HOME)")
    p.set_defaults(func=_create)

    p = sub.add_parser("restore", help="put a backup in place of the data directory (stop bendi first)")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--force", action="store_true",
                   help="replace a data directory that holds data (it is moved aside, not deleted)")  # fmt: skip
    p.add_argument("--home", type=Path, metavar="DIR", help="where to restore (default: BENDI_HOME)")
    p.set_defaults(func=_restore)

    p = sub.add_parser(
        "verify", help="check an archive (hashes, database integrity, audit chain), change nothing"
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.set_defaults(func=_verify)


def _home(args: argparse.Namespace) -> Path:
    if args.home is not None:
        return Path(args.home).expanduser()
    if "BENDI_HOME" in os.environ:  # without reading config.toml from a directory about to be replaced
        return Path(os.environ["BENDI_HOME"]).expanduser()
    return load_settings().home


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def _create(args: argparse.Namespace) -> int:
    from bendi.ops.backup import create_backup

    home = _home(args)
    result = create_backup(home, args.output, with_models=args.with_models)
    models = f", {result.blobs} model files" if args.with_models else " (model files left out: --with-models)"
    print(f"Backed up {home}: {result.files} files, {result.databases} databases{models}, "
          f"{_size(result.data_bytes)} of data -> {result.path} ({_size(result.archive_bytes)}) in {result.seconds:.1f} s.")  # fmt: skip
    for note in result.skipped:
        print(f"  not included: {note}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from bendi.ops.restore import restore_backup

    result = restore_backup(args.file, _home(args), force=args.force)
    print(f"Restored {result.files} files ({_size(result.data_bytes)}) into {result.home} in {result.seconds:.1f} s; "
          f"every file matched its hash, every database passed its integrity check and the audit chain "
          f"verified. The backup was made by {result.made_by}.")  # fmt: skip
    if result.replaced is not None:
        print(f"What was there before is kept at {result.replaced}; delete it once you are satisfied.")
    if result.reused_blobs:
        print(f"{result.reused_blobs} model files were taken over from the replaced data directory.")
    if result.missing_models:
        print(f"Model files not in this backup: {', '.join(result.missing_models)}; "
              "`bendi pull NAME` fetches them again.")  # fmt: skip
    return 0


def _verify(args: argparse.Namespace) -> int:
    from bendi.ops.restore import verify_backup

    result = verify_backup(args.file)
    print(f"{args.file} is a sound bendi backup made by {result.made_by}: {result.files} files "
          f"({_size(result.data_bytes)}) match their hashes, {result.databases} databases pass SQLite's integrity "
          f"check, audit log: {result.audit}")  # fmt: skip
    return 0
