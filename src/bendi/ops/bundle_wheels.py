"""The wheel set of an offline bundle: bendi's own wheel, the patched llama.cpp wheel, every dependency.

pip resolves (`pip install --dry-run --report`), so the set is exactly what `pip install` would pick for the
target; files are fetched into a cache (~/.cache/bendi/bundle-wheels) with their published hashes checked,
so a second bundle downloads nothing. Dependencies published only as source (jieba) are built into wheels
here, once, so the target never compiles anything.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from bendi.ops.bundle_layout import BundleError
from bendi.ops.bundle_pip import download_verified, run_pip

SUPPORTED_PLATFORMS = ("linux-x86_64", "linux-aarch64")
# Cross-target resolution assumes this glibc at least (Debian 10, RHEL 8, Ubuntu 18.10 and newer).
CROSS_GLIBC = "2.28"
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_")
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_GLIBC_SYMBOL = re.compile(rb"GLIBC_2\.(\d+)")


@dataclass(frozen=True)
class Target:
    """The machine the bundle is for: OS-architecture and Python major.minor."""

    platform: str
    python: str

    @staticmethod
    def here() -> Target:
        return Target(f"{sys.platform}-{platform.machine()}", f"{sys.version_info[0]}.{sys.version_info[1]}")

    @property
    def is_here(self) -> bool:
        return self == Target.here()

    def pip_flags(self) -> list[str]:
        """pip's target options: none for this machine; binary-only, tagged resolution for another one."""
        if self.is_here:
            return []
        arch = self.platform.split("-", 1)[1]
        glibc = _here_glibc() if self.platform == Target.here().platform else CROSS_GLIBC
        newest = int(glibc.split(".")[1])
        # pip takes the platform tags literally (it widens only the legacy manylinux names), so every
        # manylinux_2_N the target's glibc accepts is listed, newest first as pip prefers them.
        tags = [f"manylinux_2_{n}_{arch}" for n in range(newest, 4, -1)]
        tags += [f"{legacy}_{arch}" for legacy in _LEGACY_MANYLINUX] + [f"linux_{arch}"]
        flags = ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python]
        for tag in tags:
            flags += ["--platform", tag]
        return flags


def check_target(platform_name: str | None, python: str | None) -> Target:
    here = Target.here()
    target = Target(platform_name or here.platform, python or here.python)
    if target.platform not in SUPPORTED_PLATFORMS:
        raise BundleError(
            f"Platform {target.platform!r} is not one bendi bundles for; use one of {', '.join(SUPPORTED_PLATFORMS)}."
        )
    if not re.fullmatch(r"3\.\d{1,2}", target.python) or int(target.python.split(".")[1]) < 11:
        raise BundleError(
            f"Python {target.python!r} is not supported; bendi needs CPython 3.11 or newer (e.g. 3.11)."
        )
    return target


@dataclass(frozen=True)
class WheelSet:
    """The files to carry (all wheels) and what install.sh asks pip for."""

    wheels: tuple[Path, ...]
    requirements: tuple[str, ...]
    min_glibc: str | None
    cuda: bool


def build_bendi_wheel(source_root: Path, out_dir: Path) -> Path:
    """Build bendi's wheel from a copy of the source tree (the checkout stays free of build/ litter)."""
    if not (source_root / "pyproject.toml").is_file():
        raise BundleError(
            f"{source_root} is not a bendi source checkout; `bendi bundle create` builds bendi's wheel from one "
            "(or pass --bendi-wheel FILE)."
        )
    with tempfile.TemporaryDirectory(prefix="bendi-src-") as tmp:
        copy = Path(tmp) / "bendi"
        copy.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py"):
            if (source_root / name).is_file():
                shutil.copy2(source_root / name, copy / name)
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
        shutil.copytree(source_root / "src", copy / "src", ignore=ignore)
        run_pip(["wheel", "--no-deps", "-q", "-w", str(out_dir), str(copy)], what="Building bendi's wheel")
    found = sorted(out_dir.glob("bendi-*.whl"))
    if not found:
        raise BundleError("pip built no bendi wheel; run `pip wheel .` in the checkout to see why.")
    return found[-1]


def locate_llama_wheel(explicit: Path | None) -> Path:
    """bendi's patched llama.cpp wheel: the one given, or the cached build of the installed version."""
    if explicit is not None:
        if not explicit.is_file() or not explicit.name.startswith("llama_cpp_python-"):
            raise BundleError(f"{explicit} is not a llama_cpp_python wheel.")
        return explicit
    import importlib.metadata as metadata

    try:
        version = metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError as exc:
        raise BundleError(
            "llama-cpp-python is not installed here; run bash scripts/install_llama_cpp.sh."
        ) from exc
    cache = Path(
        os.environ.get("BENDI_WHEEL_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bendi" / "wheels"
    )
    key = version.split("+bendi.", 1)[1] if "+bendi." in version else None
    wheels = sorted((cache / key).glob("llama_cpp_python-*.whl")) if key else []
    if not wheels:
        raise BundleError(
            f"No built llama.cpp wheel for the installed llama-cpp-python {version} in {cache}. Build it once with "
            "`bash scripts/install_llama_cpp.sh` (it keeps the wheel there), or pass --llama-wheel FILE."
        )
    return wheels[-1]


def check_wheel_fits(wheel: Path, target: Target) -> None:
    """A binary wheel built here (llama.cpp) must be for the target's architecture; pip would only say 'unsupported'."""
    arch = target.platform.split("-", 1)[1]
    platforms = wheel.name[:-4].split("-")[-1].split(".")
    if platforms != ["any"] and not any(p.endswith("_" + arch) for p in platforms):
        raise BundleError(
            f"{wheel.name} is built for {', '.join(platforms)}, not {target.platform}. Build bendi's llama.cpp "
            f"wheel on a {target.platform} machine (bash scripts/install_llama_cpp.sh) and pass it with --llama-wheel."
        )


def wheel_has_cuda(wheel: Path) -> bool:
    with zipfile.ZipFile(wheel) as archive:
        # The CUDA backend is a shared library of its own; the CPU build still ships the header.
        return any("ggml-cuda" in n.rsplit("/", 1)[-1] and ".so" in n for n in archive.namelist())


def resolve_wheels(
    target: Target, local_wheels: list[Path], extra: list[str], cache_dir: Path, work_dir: Path
) -> list[Path]:
    """Every wheel pip would install for `local_wheels` + `extra` on the target, fetched into the cache."""
    built_dir = cache_dir / "built"
    built_dir.mkdir(parents=True, exist_ok=True)
    links = sorted({str(w.parent) for w in local_wheels} | {str(built_dir)})
    requirements = [str(w) for w in local_wheels] + extra
    if target.is_here:
        items = _dry_run(requirements, links, [], work_dir / "report.json")
        items = [_built_from_source(i, built_dir, pure=False) if not i.is_wheel else i for i in items]
    else:
        # Source-only dependencies are found with this machine's resolver, built here (they must be pure
        # Python to suit another platform), then the target's resolution takes them from `built_dir`.
        here_items = _dry_run(requirements, links, [], work_dir / "report-here.json")
        for item in here_items:
            if not item.is_wheel:
                _built_from_source(item, built_dir, pure=True)
        items = _dry_run(requirements, links, target.pip_flags(), work_dir / "report.json")
    return [_fetch(item, cache_dir) for item in items]


@dataclass(frozen=True)
class _Item:
    name: str
    version: str
    url: str
    sha256: str | None

    @property
    def file_name(self) -> str:
        return unquote(urlparse(self.url).path.rsplit("/", 1)[-1])

    @property
    def is_wheel(self) -> bool:
        return self.file_name.endswith(".whl")


def _dry_run(requirements: list[str], links: list[str], flags: list[str], report: Path) -> list[_Item]:
    args = ["install", "--dry-run", "--ignore-installed", "-q", "--report", str(report), *flags]
    for link in links:
        args += ["--find-links", link]
    run_pip([*args, *requirements], what="Resolving bendi's dependencies for the target")
    items = []
    for entry in json.loads(report.read_text(encoding="utf-8"))["install"]:
        info = entry["download_info"]
        hashes = (info.get("archive_info") or {}).get("hashes") or {}
        items.append(
            _Item(entry["metadata"]["name"], entry["metadata"]["version"], info["url"], hashes.get("sha256"))
        )
    return items


def _built_from_source(item: _Item, built_dir: Path, *, pure: bool) -> _Item:
    """A wheel built here from a source-only release (cached in built_dir), never on the target."""
    stem = re.sub(r"[-_.]+", "_", item.name).lower()
    found = sorted(built_dir.glob(f"{stem}-{item.version}-*.whl"))
    if not found:
        with tempfile.TemporaryDirectory(prefix="bendi-wheel-") as tmp:
            run_pip(
                ["wheel", "--no-deps", "-q", "-w", tmp, item.url],
                what=f"Building a wheel of {item.name} {item.version}",
            )
            made = sorted(Path(tmp).glob("*.whl"))
            if not made:
                raise BundleError(f"pip built no wheel of {item.name} {item.version}.")
            shutil.move(str(made[0]), built_dir / made[0].name)
            found = [built_dir / made[0].name]
    wheel = found[0]
    if pure and not wheel.name.endswith("-none-any.whl"):
        raise BundleError(
            f"{item.name} {item.version} is published only as source and is not pure Python, so a wheel built here "
            "would not suit the target. Create the bundle on a machine of the target's platform and Python."
        )
    return _Item(item.name, item.version, wheel.resolve().as_uri(), None)


def _fetch(item: _Item, cache_dir: Path) -> Path:
    parsed = urlparse(item.url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        if not path.is_file():
            raise BundleError(f"pip chose {path} for {item.name}, but it is not a file.")
        return path
    if not item.is_wheel:
        raise BundleError(
            f"pip chose a source release of {item.name} for the target; the bundle needs wheels only."
        )
    return download_verified(item.url, cache_dir / item.file_name, item.sha256)


def required_glibc(wheels: list[Path]) -> str | None:
    """The newest glibc any wheel needs: manylinux tags say it; locally built linux_* wheels are scanned."""
    need: tuple[int, int] | None = None
    for wheel in wheels:
        platforms = wheel.name[:-4].split("-")[-1].split(".")
        if platforms == ["any"]:
            continue
        options = [_tag_glibc(p) for p in platforms]
        known = [o for o in options if o is not None]
        wheel_need = min(known) if known else _scanned_glibc(wheel)
        if wheel_need is not None and (need is None or wheel_need > need):
            need = wheel_need
    return f"{need[0]}.{need[1]}" if need else None


def _tag_glibc(tag: str) -> tuple[int, int] | None:
    match = _MANYLINUX.match(tag)
    if match:
        return int(match.group(1)), int(match.group(2))
    return next((v for k, v in _LEGACY_MANYLINUX.items() if tag.startswith(k + "_")), None)


def _scanned_glibc(wheel: Path) -> tuple[int, int] | None:
    """The newest GLIBC_2.N symbol version its shared libraries reference (a linux_* wheel has no tag for it)."""
    newest = None
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if ".so" in name.rsplit("/", 1)[-1]:
                for match in _GLIBC_SYMBOL.finditer(archive.read(name)):
                    minor = int(match.group(1))
                    newest = max(newest or 0, minor)
    return (2, newest) if newest is not None else None


def _here_glibc() -> str:
    name, version = platform.libc_ver()
    return version if name == "glibc" and version else CROSS_GLIBC
