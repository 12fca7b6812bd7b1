"""Running pip for a bundle and fetching the files it chose, hash-checked, into a cache."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from bendi.ops.bundle_layout import BundleError

_DOWNLOAD_TIMEOUT_S = 120.0


def run_pip(args: list[str], *, what: str) -> str:
    """`python -m pip ARGS` with this interpreter; a failure becomes a sentence with pip's own last words."""
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
        tail = " | ".join(lines[-4:]) or f"exit status {done.returncode}"
        raise BundleError(f"{what} failed: {tail}")
    return done.stdout


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            hasher.update(block)
    return hasher.hexdigest()


def download_verified(url: str, dest: Path, sha256: str | None) -> Path:
    """The cached file when its hash matches, else a fresh download checked against the published hash."""
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + f".part-{os.getpid()}")
    hasher = hashlib.sha256()
    try:
        with (
            httpx.stream("GET", url, timeout=_DOWNLOAD_TIMEOUT_S, follow_redirects=True) as response,
            open(part, "wb") as out,
        ):
            response.raise_for_status()
            for block in response.iter_bytes(1024 * 1024):
                hasher.update(block)
                out.write(block)
        if sha256 is not None and hasher.hexdigest() != sha256:
            raise BundleError(f"{dest.name} from {url} does not match its published sha256; try again.")
        os.replace(part, dest)
    except httpx.HTTPError as exc:
        raise BundleError(
            f"Downloading {dest.name} failed ({exc}); check the connection to the package index."
        ) from exc
    finally:
        part.unlink(missing_ok=True)
    return dest
