"""Legacy binary Word (.doc, OLE): read through an installed converter, or say which one to install."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from bendi.core.errors import DocumentError
from bendi.knowledge.parsers.text import decode_bytes, split_paragraphs
from bendi.knowledge.records import Block, ParsedDocument

CONVERT_TIMEOUT_S = 120.0


def available_doc_converter() -> str | None:
    for program in ("antiword", "catdoc", "soffice", "libreoffice"):
        if shutil.which(program):
            return program
    return None


def _run(argv: list[str], name: str) -> bytes:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=CONVERT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DocumentError(
            f"Converting {name} took longer than {CONVERT_TIMEOUT_S:.0f} s; it was stopped."
        ) from exc
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip()[:300]
        raise DocumentError(
            f"{argv[0]} could not convert {name}: {detail or 'exit ' + str(done.returncode)}."
        )
    return done.stdout


def parse_legacy_doc(path: Path) -> ParsedDocument:
    program = available_doc_converter()
    if program is None:
        raise DocumentError(
            f"{path.name} is a legacy Word .doc file and no converter is installed. Install one "
            "(`apt-get install antiword` or LibreOffice) or save the file as .docx, then add it again."
        )
    if program == "antiword":
        text = _run(["antiword", "-m", "UTF-8.txt", "-w", "0", str(path)], path.name).decode(
            "utf-8", "replace"
        )
    elif program == "catdoc":
        text = _run(["catdoc", "-d", "utf-8", "-w", str(path)], path.name).decode("utf-8", "replace")
    else:
        with tempfile.TemporaryDirectory(prefix="bendi-doc-") as out_dir:
            _run([program, "--headless", "--convert-to", "txt:Text (encoded):UTF8", "--outdir", out_dir,
                  str(path)], path.name)  # fmt: skip
            produced = list(Path(out_dir).glob("*.txt"))
            if not produced:
                raise DocumentError(f"{program} produced no text for {path.name}.")
            text = decode_bytes(produced[0].read_bytes(), path.name)
    paragraphs = split_paragraphs(text.replace("\f", "\n"))
    return ParsedDocument(title=path.stem, blocks=tuple(Block(p) for p in paragraphs), converter=program)
