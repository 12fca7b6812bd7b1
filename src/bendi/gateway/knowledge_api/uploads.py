"""Uploaded documents: validate the client's relative file name and store the bytes under the base."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from bendi.core.errors import InvalidNameError, PayloadTooLargeError

MAX_LABEL_CHARS = 1000
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
CHUNK_BYTES = 1 << 20


def validate_upload_name(raw: str | None) -> str:
    """The part's filename as the document's `file`: a relative path, no '..', no control characters.

    It is only ever a label in the database; bytes are stored under a content-derived name."""
    if not raw:
        raise InvalidNameError("An uploaded part has no filename; send each file with its name.")
    name = unicodedata.normalize("NFC", raw.replace("\\", "/")).strip()
    if len(name) > MAX_LABEL_CHARS:
        raise InvalidNameError(
            f"The file name is {len(name)} characters long; the limit is {MAX_LABEL_CHARS}."
        )
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise InvalidNameError(f"The file name {name!r} contains control characters.")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise InvalidNameError(f"The file name {name!r} is absolute; send a relative name.")
    parts = PurePosixPath(name).parts
    if not parts or any(part in ("..", ".") for part in parts):
        raise InvalidNameError(
            f"The file name {name!r} contains '..' or '.' components, which are not allowed."
        )
    return "/".join(parts)


async def store_upload(upload: Any, uploads_dir: Path, budget_bytes: int) -> tuple[Path, int]:
    """Copy one part to uploads/<sha256><suffix>, counting against the request's byte budget."""
    uploads_dir.mkdir(parents=True, exist_ok=True)
    suffix = Path(str(upload.filename)).suffix.lower()
    suffix = suffix if _SUFFIX.match(suffix) else ".bin"
    temp = uploads_dir / f".{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(temp, "wb") as out:
            while block := await upload.read(CHUNK_BYTES):
                size += len(block)
                if size > budget_bytes:
                    raise PayloadTooLargeError(
                        "The upload is larger than this server accepts (BENDI_MAX_UPLOAD_BYTES); "
                        "split it or raise the limit."
                    )
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        final = uploads_dir / f"{digest.hexdigest()}{suffix}"
        os.replace(temp, final)  # atomic: a crash never leaves a half-written stored file
        return final, size
    finally:
        temp.unlink(missing_ok=True)
