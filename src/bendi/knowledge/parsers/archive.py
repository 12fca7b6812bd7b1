"""Checks on an Office (DOCX/XLSX) ZIP before any XML library sees it (checklist R19, R18 XML).

Sizes are counted from the bytes that actually come out of decompression, never from the sizes the
ZIP headers claim (they can lie). Office parts never carry a DTD (ECMA-376 forbids it), so a part
with <!DOCTYPE or <!ENTITY is an XML entity attack (XXE `file:///etc/passwd`, billion laughs)
and the file is refused before python-docx or openpyxl parse it."""

from __future__ import annotations

import zipfile
from pathlib import Path

from bendi.core.errors import DocumentError

MAX_ENTRIES = 10_000
MAX_TOTAL_BYTES = 512 * 1024 * 1024  # decompressed; a text-heavy 1000-page DOCX is ~50 MB
MAX_RATIO = 100  # decompressed / compressed per part, checked once a part passes RATIO_FROM_BYTES
RATIO_FROM_BYTES = 1024 * 1024  # small XML parts of repeated markup compress far better than 100:1
_DTD_MARKERS = tuple(
    marker.encode(codec)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for codec in ("utf-8", "utf-16-le", "utf-16-be")
)
_PROLOG_BYTES = 64 * 1024  # a DTD must come before the root element: the start of a part holds it


def check_office_archive(path: Path) -> set[str]:
    """The part names of a safe archive; DocumentError naming the problem otherwise."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if len(entries) > MAX_ENTRIES:
                raise DocumentError(f"{path.name} holds {len(entries)} files; an Office file has far fewer.")
            total = 0
            for entry in entries:
                _check_name(path, entry.filename)
                total = _check_part(path, archive, entry, total)
            return {entry.filename for entry in entries}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise DocumentError(f"{path.name} looks like a ZIP/Office file but is damaged: {exc}.") from exc
    except RuntimeError as exc:  # an encrypted entry
        raise DocumentError(
            f"{path.name} is encrypted; save it without a password and add it again."
        ) from exc


def _check_name(path: Path, name: str) -> None:
    # Nothing is extracted to disk, but an archive naming such parts was not written by Office.
    if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or ":" in name:
        raise DocumentError(f"{path.name} contains a part with an unsafe name ({name!r}); refusing it.")


def _check_part(path: Path, archive: zipfile.ZipFile, entry: zipfile.ZipInfo, total: int) -> int:
    if entry.is_dir():
        return total
    produced = 0
    prolog = b""
    with archive.open(entry) as part:
        while block := part.read(1 << 20):
            produced += len(block)
            total += len(block)
            if len(prolog) < _PROLOG_BYTES:
                prolog += block[: _PROLOG_BYTES - len(prolog)]
            if total > MAX_TOTAL_BYTES:
                raise DocumentError(
                    f"{path.name} decompresses to more than {MAX_TOTAL_BYTES // (1024 * 1024)} MB; "
                    "it is a ZIP bomb or far larger than any office document."
                )
            if produced > RATIO_FROM_BYTES and produced > MAX_RATIO * max(1, entry.compress_size):
                raise DocumentError(
                    f"{path.name}: the part {entry.filename} expands more than {MAX_RATIO}:1 "
                    "(a ZIP bomb); refusing it."
                )
    if entry.filename.lower().endswith((".xml", ".rels")) and any(m in prolog for m in _DTD_MARKERS):
        raise DocumentError(
            f"{path.name}: the part {entry.filename} declares a DTD (<!DOCTYPE>/<!ENTITY>), which Office "
            "files never do; refusing it (XML entity attacks read server files or exhaust memory)."
        )
    return total
