"""Rules checked on the source and the installed packages (checklist R3, R39): nothing in bendi
deserializes code-carrying formats, and no dependency is older than its known-bad versions."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "bendi"

# Calls that can run code hidden in data (R3, R13): refused everywhere in bendi's own code.
FORBIDDEN_CALLS = {
    r"\bpickle\.loads?\(": "pickle",
    r"\bcloudpickle\b": "cloudpickle",
    r"\brecv_pyobj\(": "ZMQ recv_pyobj",
    r"\bmarshal\.loads?\(": "marshal",
    r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)": "torch.load without weights_only=True",
    r"\byaml\.load\((?![^)]*SafeLoader)": "yaml.load without SafeLoader",
    r"\bshelve\.open\(": "shelve",
}

# Known-bad versions (R39): the floor is the first release with the fix named beside it.
FLOORS = {
    "python-multipart": ("0.0.18", "CVE-2024-53981 multipart DoS"),
    "starlette": ("0.47.2", "CVE-2025-54121 / CVE-2024-47874 multipart DoS"),
    "fastapi": ("0.115.0", "pulls the fixed Starlette"),
    "jinja2": ("3.1.6", "CVE-2025-27516 sandbox escape via |attr"),
    "h11": ("0.16.0", "CVE-2025-43859 request smuggling"),
    "pypdf": ("6.1.3", "2025 pypdf infinite-loop and memory DoS fixes"),
    "cryptography": ("44.0.1", "CVE-2024-12797 (bundled OpenSSL)"),
    "lxml": ("5.0", "libxml2 XXE hardening in the bundled build"),
}


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_dependencies_are_past_their_known_bad_versions(package: str) -> None:
    floor, why = FLOORS[package]
    installed = importlib.metadata.version(package)
    assert _version_tuple(installed) >= _version_tuple(floor), f"{package} {installed} < {floor}: {why}"


def test_no_code_carrying_deserialization_in_bendi() -> None:
    found = []
    for path in SRC.rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, what in FORBIDDEN_CALLS.items():
                if re.search(pattern, code):
                    found.append(f"{path.relative_to(SRC)}:{number}: {what}")
    assert not found, "\n".join(found)
