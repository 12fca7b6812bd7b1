"""The offline bundle's layout and its manifest (bundle.json + SHA256SUMS), shared by create, verify, import.

bendi-offline/
  install.sh                      the installer (scripts/bundle_install.sh); bash, python3, tar, sha256sum
  README.txt                      how to install, for whoever carries the archive in
  wheels/*.whl                    bendi, the patched llama.cpp wheel and every dependency, for one target
  models/<name>/<tag>/<file>      each chosen model's GGUF part(s) under their published names
  models/<name>/<tag>/manifest.json   the store manifest they came with
  bundle.json                     what the bundle is for, which models, every file above with sha256 and size
  SHA256SUMS                      `sha256sum -c` format, every file but itself (bundle.json included)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from bendi.core.errors import UserInputError

TOP_DIR = "bendi-offline"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "bundle.json"
SUMS_NAME = "SHA256SUMS"
# Names inside a bundle: what wheels and GGUF files are called, and nothing a shell or tar could misread.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*(/[A-Za-z0-9][A-Za-z0-9._+\-]*)*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BundleError(UserInputError):
    """A bundle that cannot be made, or one that is damaged, incomplete or unsafe to install."""

    code = "bundle_invalid"


@dataclass(frozen=True)
class BundleModel:
    """One model carried in the bundle: its local name, folder in the bundle and GGUF files in order."""

    name: str
    folder: str  # "models/<name>/<tag>"
    files: tuple[str, ...]  # published file names, part 1 first
    digests: tuple[str, ...]  # "sha256-<hex>" of each, as the store knew them

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "folder": self.folder,
            "files": list(self.files),
            "digests": list(self.digests),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> BundleModel:
        return BundleModel(
            str(data["name"]),
            check_member_path(str(data["folder"])),
            tuple(str(f) for f in data["files"]),
            tuple(str(d) for d in data["digests"]),
        )


@dataclass(frozen=True)
class BundleManifest:
    """bundle.json: the target, the packages to install, the models, and every file's hash."""

    bendi_version: str
    platform: str  # "linux-x86_64"
    python: str  # "3.11"
    min_glibc: str | None  # the newest manylinux tag among the wheels; None when all are pure Python
    requirements: tuple[str, ...]  # what install.sh asks pip for, e.g. "bendi==0.1.0"
    models: tuple[BundleModel, ...]
    demo_data: bool
    cuda: bool
    created_s: float
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (sha256 hex, size)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": BUNDLE_FORMAT_VERSION,
            "bendi_version": self.bendi_version,
            "platform": self.platform,
            "python": self.python,
            "min_glibc": self.min_glibc,
            "requirements": list(self.requirements),
            "models": [m.to_json() for m in self.models],
            "demo_data": self.demo_data,
            "cuda": self.cuda,
            "created_s": self.created_s,
            "files": {p: {"sha256": h, "size_bytes": s} for p, (h, s) in sorted(self.files.items())},
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> BundleManifest:
        version = int(data.get("format_version", 0))
        if version != BUNDLE_FORMAT_VERSION:
            raise BundleError(
                f"This bundle has format version {version}; this bendi reads version {BUNDLE_FORMAT_VERSION}. "
                "Make the bundle with the same bendi release that will verify it."
            )
        try:
            return BundleManifest(
                bendi_version=str(data["bendi_version"]),
                platform=str(data["platform"]),
                python=str(data["python"]),
                min_glibc=None if data.get("min_glibc") is None else str(data["min_glibc"]),
                requirements=tuple(str(r) for r in data["requirements"]),
                models=tuple(BundleModel.from_json(m) for m in data["models"]),
                demo_data=bool(data.get("demo_data", False)),
                cuda=bool(data.get("cuda", False)),
                created_s=float(data.get("created_s", 0.0)),
                files={
                    check_member_path(p): (str(v["sha256"]), int(v["size_bytes"]))
                    for p, v in dict(data["files"]).items()
                },
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{MANIFEST_NAME} is malformed ({exc}); the bundle is damaged.") from exc


def check_member_path(path: str) -> str:
    """A relative path inside the bundle: plain names, no '..', no absolute path, nothing odd."""
    if not _SAFE_PATH.match(path) or ".." in PurePosixPath(path).parts:
        raise BundleError(f"The bundle names an unsafe path {path!r}; it may have been tampered with.")
    return path


def format_sums(files: dict[str, tuple[str, int]]) -> str:
    """SHA256SUMS text in GNU coreutils' format (two spaces: text mode, which is binary-safe on Linux)."""
    return "".join(f"{digest}  {path}\n" for path, (digest, _size) in sorted(files.items()))


def parse_sums(text: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, path = line.partition("  ")
        if not sep or not _HEX64.match(digest):
            raise BundleError(f"{SUMS_NAME} line {number} is not '<sha256>  <path>'; the bundle is damaged.")
        sums[check_member_path(path)] = digest
    return sums


class HashingReader:
    """Wraps a file so that whatever tarfile reads from it is hashed on the way (one pass per file)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.size_bytes = 0

    def read(self, size: int = -1) -> bytes:
        block = self.handle.read(size)
        self.sha256.update(block)
        self.size_bytes += len(block)
        return block


class HashingWriter:
    """Wraps the archive being written so that its own sha256 is known when it is closed."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()
