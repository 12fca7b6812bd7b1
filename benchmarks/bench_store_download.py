"""Download throughput of `bendi pull` from a local server versus curl on the same file, and hashing cost.

Generates a ~200 MB GGUF in a temp dir, serves it with the test suite's fake hub (sendfile, loopback)
and times, best of N runs each:
  curl               curl -o FILE URL (no hashing, no fsync): the reference
  bendi, 1 connection  stream + SHA-256 on a writer thread + fsync + atomic rename
  bendi pull, default  the whole pull as a user runs it (HEAD, one connection probed for speed: a
                       fast link stays on it, GGUF validation, manifest)
  bendi pull, 4 conn   the same, forced to split over 4 Range connections from the start (what a
                       slow, per-connection-capped CDN link gets): parallel segments, frontier hashing
  bendi pull, HF repo  a Hugging Face-format repository of about the same bytes (config, tokenizer, index,
                       two safetensors shards) from the fake hub's HF API: listing, per-file
                       downloads, git-id checks of small files, header validation, view folder
and the hashing overhead: SHA-256 alone over the same bytes, as a share of the download time.

Usage: .venv/bin/python benchmarks/bench_store_download.py [--size-mb 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "store"))

from ggufmaker import gguf_bytes  # noqa: E402
from hfmaker import write_hf_model  # noqa: E402

from bendi.core.paths import DataPaths  # noqa: E402
from bendi.core.settings import load_settings  # noqa: E402
from bendi.store.download import Downloader  # noqa: E402
from bendi.store.hosts import GuardedClient, HostPolicy  # noqa: E402
from bendi.store.manifest import Layout  # noqa: E402
from bendi.store.sources import Mirror  # noqa: E402
from bendi.store.store import Store  # noqa: E402

REPO, FILE = "bench/Big-GGUF", "Big-F32.gguf"
HF_REPO = "bench/Big-HF"


def best_and_median(times: list[float]) -> tuple[float, float]:
    return min(times), statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    curl = shutil.which("curl")
    if curl is None:
        print("curl is not installed; it is the reference this benchmark compares against.")
        return 1
    with tempfile.TemporaryDirectory(prefix="bendi-bench-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / FILE
        source.write_bytes(gguf_bytes(args.size_mb * 1_000_000, seed=42))
        size = source.stat().st_size
        # The server runs in its own process, so it competes with neither client for the GIL.
        server = subprocess.Popen([sys.executable, str(ROOT / "tests/store/fakehub.py"), REPO, FILE, str(source)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert server.stdout is not None and server.stdin is not None
        mirror = server.stdout.readline().strip() + "/mirror"
        folder = write_hf_model(tmp / "hf", shard_elements=args.size_mb * 1_000_000 // 8, extras=False)
        pairs = [str(x) for p in sorted(folder.iterdir()) for x in (p.name, p)]
        hf_server = subprocess.Popen([sys.executable, str(ROOT / "tests/store/fakehub.py"), HF_REPO, *pairs],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert hf_server.stdout is not None and hf_server.stdin is not None
        hf_endpoint = hf_server.stdout.readline().strip()
        try:
            results = _measure(args, curl, tmp, source, mirror)
            hf_s = _measure_hf(args, tmp, hf_endpoint)
        finally:
            for proc in (server, hf_server):
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait()
        hf_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        hf_files = len(list(folder.iterdir()))
    _report(args, size / 1e6, *results)
    best, median = best_and_median(hf_s)
    curl_best = min(results[0])
    print(f"  {'bendi pull, HF repo':<24}{hf_mb / best:6.0f} MB/s ({hf_mb / median:.0f})"
          f"   ratio to curl {(curl_best / (size / 1e6)) / (best / hf_mb):.2f}   ({hf_mb:.0f} MB in "
          f"{hf_files} files)")  # fmt: skip
    return 0


def _measure_hf(args: argparse.Namespace, tmp: Path, endpoint: str) -> list[float]:
    """Whole-repository pulls of the HF-format model (`hf:OWNER/REPO`), removed after each run."""
    settings = load_settings(home=tmp / "home-hf", hf_endpoint=endpoint, source_order=("huggingface",))
    times = []
    for _ in range(args.runs):
        store = Store(settings)
        start = time.perf_counter()
        installed = store.pull(f"hf:{HF_REPO}", source="huggingface")
        times.append(time.perf_counter() - start)
        assert installed.manifest.format == "hf" and installed.manifest.verified
        store.remove(installed.name)
    return times


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(
    args: argparse.Namespace, curl: str, tmp: Path, source: Path, mirror: str
) -> tuple[list[float], list[float], dict[str, list[float]], list[float], float, float, float]:
    url = f"{mirror}/{REPO}/{FILE}"
    curl_s, curl_cpu = [], []
    curl_then_hash_s = 0.0
    for run in range(args.runs):
        out = tmp / f"curl-{run}.bin"
        start = time.perf_counter()
        proc = subprocess.Popen([curl, "-s", "-f", "-o", str(out), url])
        _, status, usage = os.wait4(proc.pid, 0)
        curl_s.append(time.perf_counter() - start)
        curl_cpu.append(usage.ru_utime + usage.ru_stime)
        assert status == 0, "curl failed"
        if run == 0:  # the same guarantee bendi gives, the usual way: download, then hash
            subprocess.run(["sha256sum", str(out)], check=True, capture_output=True)
            curl_then_hash_s = time.perf_counter() - start
        out.unlink()
    settings = load_settings(home=tmp / "home", mirrors=(mirror,), source_order=("mirror",))
    downloader_s, downloader_cpu = [], []
    for _ in range(args.runs):
        layout = Layout(DataPaths(tmp / "home")).ensure()
        with GuardedClient(HostPolicy(settings)) as http:
            remote = Mirror((mirror,)).locate(http, REPO, FILE)
            start, cpu = time.perf_counter(), _cpu_s()
            digest, _, _ = Downloader(layout, http).fetch(remote, "bench")
            downloader_s.append(time.perf_counter() - start)
            downloader_cpu.append(_cpu_s() - cpu)
        layout.blob_path(digest).unlink()

    pull_s: dict[str, list[float]] = {"default": [], "4 conn": []}
    for mode, times in pull_s.items():
        update = {} if mode == "default" else {"download_split_below_mb_s": math.inf}
        for _ in range(args.runs):
            store = Store(settings.model_copy(update=update))
            start = time.perf_counter()
            installed = store.pull(f"hf:{REPO}/{FILE}", source="mirror")
            times.append(time.perf_counter() - start)
            store.remove(installed.name)

    data = source.read_bytes()
    hash_s = []
    for _ in range(args.runs):
        start = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        hash_s.append(time.perf_counter() - start)

    return curl_s, downloader_s, pull_s, hash_s, min(curl_cpu), min(downloader_cpu), curl_then_hash_s


def _report(
    args: argparse.Namespace,
    mb: float,
    curl_s: list[float],
    downloader_s: list[float],
    pull_s: dict[str, list[float]],
    hash_s: list[float],
    curl_cpu_s: float,
    downloader_cpu_s: float,
    curl_then_hash_s: float,
) -> None:
    curl_best, curl_med = best_and_median(curl_s)
    dl_best, dl_med = best_and_median(downloader_s)
    hash_best, _ = best_and_median(hash_s)
    print(f"file: {mb:.0f} MB over loopback, best of {args.runs} (median in brackets)")
    print(f"  {'curl':<24}{mb / curl_best:6.0f} MB/s ({mb / curl_med:.0f})   CPU {curl_cpu_s:.2f} s")
    print(f"  {'bendi downloader, 1 conn':<24}{mb / dl_best:6.0f} MB/s ({mb / dl_med:.0f})   CPU {downloader_cpu_s:.2f} s"
          f"   ratio to curl {curl_best / dl_best:.2f}")  # fmt: skip
    for mode, times in pull_s.items():
        best, median = best_and_median(times)
        print(f"  {f'bendi pull, {mode}':<24}{mb / best:6.0f} MB/s ({mb / median:.0f})"
              f"   ratio to curl {curl_best / best:.2f}")  # fmt: skip
    print(f"  {'curl, then sha256sum':<24}{mb / curl_then_hash_s:6.0f} MB/s (one run)"
          f"   downloader vs this {curl_then_hash_s / dl_best:.2f}")  # fmt: skip
    print(
        f"  {'sha256 alone':<24}{mb / hash_best:6.0f} MB/s   = {hash_best / dl_best:.0%} of the downloader's time"
    )


if __name__ == "__main__":
    sys.exit(main())
