"""A parse worker process: `python -m bendi.knowledge.parse_worker_child READ_FD WRITE_FD MEMORY_MB`.

It confines itself (parse_worker_sandbox), says whether the network is cut, then parses one
document per request and answers with JSON: progress while OCR reads pages, then the document or
an error. Anything that kills it (a segfault in a C parser, SIGXCPU, the server's SIGKILL after
the wall timeout) is seen and named by the server side (parse_worker.py)."""

from __future__ import annotations

import sys

from bendi.knowledge import parse_worker_sandbox as sandbox

NETWORK = "not started as a worker"
# Confinement before any other import: unshare() needs a single-threaded process.
if __name__ == "__main__":
    sandbox.die_with_parent()
    NETWORK = sandbox.drop_network()
    sandbox.limit_resources(int(sys.argv[3]))

import importlib  # noqa: E402
from collections.abc import Callable  # noqa: E402
from multiprocessing.connection import Connection  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bendi.core.errors import BendiError  # noqa: E402
from bendi.knowledge.parse_worker_protocol import MAX_MESSAGE_BYTES, dumps, encode_document, loads  # noqa: E402


def _parse_function(dotted: str) -> Callable[..., Any]:
    """ "module:function"; the default is the product's parse_document. Tests name their own."""
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _handle(request: dict[str, Any], out: Connection) -> dict[str, Any]:
    path = Path(request["path"])
    sandbox.cpu_budget(float(request["timeout_s"]))
    if request["op"] == "probe":
        from bendi.knowledge.parsers import looks_scanned

        return {"ok": looks_scanned(path)}
    reader = None
    if request.get("ocr_threads"):
        from bendi.knowledge.ocr_pool import OcrReader

        def on_page(done: int, total: int) -> None:
            sandbox.cpu_budget(float(request["timeout_s"]))  # each page renews the document's budget
            out.send_bytes(dumps({"progress": [done, total]}))

        lock = request.get("ocr_lock")
        reader = OcrReader(threads=int(request["ocr_threads"]), on_page=on_page,
                           page_lock=Path(lock) if lock else None)  # fmt: skip
    parse = _parse_function(request.get("parser") or "bendi.knowledge.parsers:parse_document")
    return {"ok": encode_document(parse(path, reader))}


def serve(inbox: Connection, out: Connection) -> None:
    out.send_bytes(dumps({"ready": True, "network": NETWORK}))
    while True:
        try:
            request = loads(inbox.recv_bytes(MAX_MESSAGE_BYTES))
        except EOFError:
            return  # the server closed the pipe: recycled or shutting down
        try:
            reply = _handle(request, out)
        except MemoryError:
            # The address-space limit: the heap may be fragmented now, so say so and leave.
            out.send_bytes(dumps({"error": {"reason": "memory_limit", "message": ""}}))
            return
        except BendiError as exc:
            reply = {"error": {"reason": "document", "message": exc.message}}
        except Exception as exc:  # a parser bug on one file: that file fails, the worker goes on
            reply = {"error": {"reason": "document", "message": f"{type(exc).__name__}: {exc}"}}
        out.send_bytes(dumps(reply))


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
