"""Test-only parsers that misbehave on purpose, run inside parse workers through ParsePool(parser=...).

Never imported by product code: a test names "hostile_parsers:parse" as the pool's parser, and a
file's name says how the parser misbehaves on it; any other file is parsed by the product parser."""

from __future__ import annotations

import ctypes
import json
import os
import resource
import socket
import time
from pathlib import Path
from typing import Any

from bendi.knowledge.parsers import parse_document
from bendi.knowledge.records import Block, ParsedDocument


def _probe_environment(path: Path) -> dict[str, Any]:
    """What a parser inside the worker can see and do: network, temp dir, environment, limits."""
    port = int(path.read_text().strip())
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            reached = "connected"
    except OSError as exc:
        reached = f"refused: {exc}"
    return {
        "network": reached,
        "tmpdir": os.environ.get("TMPDIR", ""),
        "cwd": os.getcwd(),
        "env": sorted(os.environ),
        "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0],
        "rlimit_core": resource.getrlimit(resource.RLIMIT_CORE)[0],
        "pid": os.getpid(),
    }


def parse(path: Path, ocr: Any = None) -> ParsedDocument:
    name = path.name
    if name.endswith(".hang.txt"):
        time.sleep(3600)  # a parser stuck waiting (a lock, a pipe): only the wall clock ends it
    if name.endswith(".spin.txt"):
        while True:  # a parser in an endless loop (an outline cycle): CPU limit or wall clock
            pass
    if name.endswith(".segfault.txt"):
        ctypes.string_at(0)  # a C library reading address 0
    if name.endswith(".exit.txt"):
        os._exit(3)
    if name.endswith(".hog.txt"):
        import numpy as np

        hoard = []
        while True:  # a decompression bomb's output piling up (address space only: quick to blow up)
            hoard.append(np.empty(64 * 1024 * 1024, dtype=np.uint8))
    if name.endswith(".probe.txt"):
        return ParsedDocument(path.stem, (Block(json.dumps(_probe_environment(path))),))
    return parse_document(path, ocr)
