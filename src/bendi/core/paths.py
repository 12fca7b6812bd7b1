"""The data-dir layout: the only module that turns names into paths under BENDI_HOME."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from bendi.core.errors import InvalidNameError

MAX_NAME_CHARS = 200
# Letters/digits of any script are allowed as *display* names elsewhere; path components are strict.
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


def safe_component(raw: str, *, what: str = "name", max_chars: int = MAX_NAME_CHARS) -> str:
    """Validate one path component (no separators, no traversal, no control or odd Unicode).

    Every user-supplied name that becomes part of a path goes through here.
    """
    if not isinstance(raw, str) or raw == "":
        raise InvalidNameError(f"The {what} is empty. Use letters, digits, '.', '_' or '-'.")
    if len(raw) > max_chars:
        raise InvalidNameError(f"The {what} is {len(raw)} characters long; the limit is {max_chars}.")
    if "\x00" in raw:
        raise InvalidNameError(f"The {what} contains a NUL byte, which is not allowed.")
    if unicodedata.normalize("NFKC", raw) != raw or not raw.isascii():
        raise InvalidNameError(
            f"The {what} {raw!r} contains non-ASCII or look-alike characters. Use letters, digits, '.', '_' or '-'."
        )
    if raw in (".", "..") or not _COMPONENT.match(raw) or ".." in raw:
        raise InvalidNameError(
            f"The {what} {raw!r} is not allowed: use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, and no '..'."
        )
    return raw


def ensure_inside(root: Path, candidate: Path) -> Path:
    """Resolve `candidate` and refuse it unless it stays under `root` (defence in depth vs symlinks)."""
    root_r = root.resolve()
    cand_r = candidate.resolve()
    if cand_r != root_r and root_r not in cand_r.parents:
        raise InvalidNameError(f"The path {candidate} escapes the data directory {root}.")
    return candidate


@dataclass(frozen=True)
class DataPaths:
    """Where each kind of state lives under BENDI_HOME."""

    home: Path

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def blobs(self) -> Path:
        return self.models / "blobs"

    @property
    def manifests(self) -> Path:
        return self.models / "manifests"

    @property
    def partials(self) -> Path:
        return self.models / "partial"

    @property
    def model_views(self) -> Path:
        """Per-model folders of links named as published (split GGUFs must sit side by side)."""
        return self.models / "views"

    @property
    def knowledge(self) -> Path:
        return self.home / "knowledge"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def conversations_db(self) -> Path:
        return self.home / "conversations.sqlite3"

    @property
    def access_db(self) -> Path:
        """Accounts, departments, API keys, sessions and knowledge-base access lists."""
        return self.home / "access.sqlite3"

    @property
    def audit_db(self) -> Path:
        return self.home / "audit.sqlite3"

    @property
    def usage_db(self) -> Path:
        return self.home / "usage.sqlite3"

    def knowledge_base_dir(self, kb_name: str) -> Path:
        return ensure_inside(
            self.knowledge, self.knowledge / safe_component(kb_name, what="knowledge-base name")
        )

    def ensure(self) -> DataPaths:
        for directory in (
            self.home,
            self.models,
            self.blobs,
            self.manifests,
            self.partials,
            self.knowledge,
            self.logs,
            self.cache,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        return self
