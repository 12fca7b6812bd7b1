"""Model references: parse what a user typed into a validated name, hub file or digest.

Every piece that can end up in a path or a URL (model names, tags, repo owners and names, file
path components, digests) goes through `bendi.core.paths.safe_component` here, and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bendi.core.errors import InvalidNameError
from bendi.core.paths import safe_component

HUB_PREFIXES = {
    "hf": "huggingface",
    "huggingface": "huggingface",
    "modelscope": "modelscope",
    "ms": "modelscope",
}
DEFAULT_TAG = "latest"
MAX_REFERENCE_CHARS = 512
MAX_FILE_DEPTH = 4  # subfolders inside a repo, e.g. "DeepSeek-R1-Q4_K_M/part-00001-of-00009.gguf"
_DIGEST = re.compile(r"^sha256-[0-9a-f]{64}$")
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")
MAX_SPLIT_PARTS = 999


@dataclass(frozen=True)
class ModelName:
    """A local model name `name:tag` (tag defaults to 'latest'); both parts are safe path components."""

    name: str
    tag: str = DEFAULT_TAG

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True)
class HubFile:
    """A file in a hub repository: `hf:owner/repo/path/file.gguf` or `modelscope:...`."""

    hub: str  # "huggingface" | "modelscope"
    owner: str
    repo_name: str
    path_in_repo: str  # components validated, joined with "/"

    @property
    def repo(self) -> str:
        return f"{self.owner}/{self.repo_name}"

    @property
    def file_name(self) -> str:
        return self.path_in_repo.rsplit("/", 1)[-1]

    def default_model_name(self) -> ModelName:
        """The local name a hub file gets unless the user passes --name: its lower-cased stem."""
        stem = self.file_name
        split = _SPLIT.match(stem)
        stem = split.group("stem") if split else stem.rsplit(".", 1)[0]
        return ModelName(safe_component(stem.lower()[:120], what="model name"), DEFAULT_TAG)


def parse_digest(raw: str) -> str:
    """Validate a blob digest `sha256-<64 lower-case hex>` (the blob file's name)."""
    if not isinstance(raw, str) or not _DIGEST.match(raw):
        raise InvalidNameError(f"{raw!r} is not a digest; expected 'sha256-' followed by 64 hex digits.")
    return raw


def parse_model_name(raw: str) -> ModelName:
    """Validate a local model name `name[:tag]`; refuses traversal, separators, NUL, odd Unicode."""
    _check_raw(raw)
    name, sep, tag = raw.partition(":")
    if sep and ":" in tag:
        raise InvalidNameError(f"The model name {raw!r} has more than one ':'. Use NAME or NAME:TAG.")
    return ModelName(
        safe_component(name, what="model name", max_chars=120),
        safe_component(tag, what="model tag", max_chars=120) if sep else DEFAULT_TAG,
    )


def parse_hub_file(raw: str) -> HubFile:
    """Parse `hf:owner/repo/file.gguf` (or modelscope:/ms:) with every component validated."""
    _check_raw(raw)
    prefix, sep, rest = raw.partition(":")
    hub = HUB_PREFIXES.get(prefix.lower())
    if not sep or hub is None:
        raise InvalidNameError(f"{raw!r} is not a hub reference; use hf:OWNER/REPO/FILE.gguf.")
    parts = rest.split("/")
    if len(parts) < 3 or len(parts) > 2 + MAX_FILE_DEPTH:
        raise InvalidNameError(
            f"{raw!r} should look like {prefix}:OWNER/REPO/FILE.gguf (a repository and a file in it)."
        )
    owner = safe_component(parts[0], what="repository owner", max_chars=96)
    repo_name = safe_component(parts[1], what="repository name", max_chars=96)
    path = [safe_component(p, what="file name", max_chars=200) for p in parts[2:]]
    return HubFile(hub, owner, repo_name, "/".join(path))


@dataclass(frozen=True)
class HubRepo:
    """A whole hub repository, `hf:owner/repo` (a Hugging Face-format model)."""

    hub: str  # "huggingface" | "modelscope"
    owner: str
    repo_name: str

    @property
    def repo(self) -> str:
        return f"{self.owner}/{self.repo_name}"

    @property
    def reference(self) -> str:
        return f"{'hf' if self.hub == 'huggingface' else 'modelscope'}:{self.repo}"

    def default_model_name(self) -> ModelName:
        return ModelName(safe_component(self.repo_name.lower()[:120], what="model name"), DEFAULT_TAG)


def is_repo_reference(raw: str) -> bool:
    """`hf:owner/repo` with no file: a whole repository."""
    return is_hub_reference(raw) and raw.partition(":")[2].count("/") == 1


def parse_hub_repo(raw: str) -> HubRepo:
    """Parse `hf:owner/repo` (or modelscope:/ms:) with both components validated."""
    _check_raw(raw)
    prefix, sep, rest = raw.partition(":")
    hub = HUB_PREFIXES.get(prefix.lower())
    parts = rest.split("/")
    if not sep or hub is None or len(parts) != 2:
        raise InvalidNameError(f"{raw!r} is not a hub repository; use hf:OWNER/REPO.")
    return HubRepo(
        hub,
        safe_component(parts[0], what="repository owner", max_chars=96),
        safe_component(parts[1], what="repository name", max_chars=96),
    )


def is_hub_reference(raw: str) -> bool:
    prefix, sep, _ = raw.partition(":")
    return bool(sep) and prefix.lower() in HUB_PREFIXES and "/" in raw


def split_parts(file_name: str) -> list[str] | None:
    """For `x-00001-of-00003.gguf` the names of all parts; None for a single-file model.

    Any part may be named (the user may paste part 2); the list always starts at part 1.
    """
    match = _SPLIT.match(file_name)
    if not match:
        return None
    count = int(match.group("count"))
    index = int(match.group("index"))
    if not 1 <= count <= MAX_SPLIT_PARTS or not 1 <= index <= count:
        raise InvalidNameError(f"{file_name!r} names part {index} of {count}, which is not a valid split.")
    stem = match.group("stem")
    return [f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def _check_raw(raw: str) -> None:
    if not isinstance(raw, str) or not raw:
        raise InvalidNameError("The model name is empty. Run `bendi list` to see installed models.")
    if len(raw) > MAX_REFERENCE_CHARS:
        raise InvalidNameError(
            f"The model reference is {len(raw)} characters; the limit is {MAX_REFERENCE_CHARS}."
        )
    if "\x00" in raw:
        raise InvalidNameError("The model name contains a NUL byte, which is not allowed.")
