"""Download throughput of `bendi pull` from a local server versus curl on the same file, and hashing cost.

Generates a ~200 MB GGUF in a temp dir, serves it with the test suite's fake hub (sendfile, loopback)
and times, best of N runs each:
  curl               curl -o FILE URL (no hashing, no fsync): the reference
  bendi downloader   stream + SHA-256 while streaming + fsync + atomic rename (what `bendi pull` does per file)
  bendi pull         the whole pull: HEAD, download, GGUF validation, manifest
and the hashing overhead: SHA-256 alone over the same bytes, as a share of the download time.

Usage: .venv/bin/python benchmarks/bench_store_download.py [--size-mb 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "store"))

from fakehub import FakeHub  # noqa: E402
from ggufmaker import gguf_bytes  # noqa: E402

from bendi.core.paths import DataPaths  # noqa: E402
from bendi.core.settings import load_settings  # noqa: E402
from bendi.store.download import Downloader  # noqa: E402
from bendi.store.hosts import GuardedClient, HostPolicy  # noqa: E402
from bendi.store.manifest import Layout  # noqa: E402
from bendi.store.sources import Mirror  # noqa: E402
from bendi.store.store import Store  # noqa: E402

REPO, FILE = "bench/Big-GGUF", "Big-F32.gguf"


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
    with tempfile.TemporaryDirectory(prefix="bendi-bench-") as tmp_name, FakeHub(with_cdn=False) as hub:
        tmp = Path(tmp_name)
        source = tmp / FILE
        source.write_bytes(gguf_bytes(args.size_mb * 1_000_000, seed=42))
        size = source.stat().st_size
        hub.state.add(REPO, FILE, source)
        url = f"{hub.mirror}/{REPO}/{FILE}"
        mb = size / 1e6

        curl_s = []
        for run in range(args.runs):
            out = tmp / f"curl-{run}.bin"
            start = time.perf_counter()
            subprocess.run([curl, "-s", "-f", "-o", str(out), url], check=True)
            curl_s.append(time.perf_counter() - start)
            out.unlink()

        settings = load_settings(home=tmp / "home", mirrors=(hub.mirror,), source_order=("mirror",))
        downloader_s = []
        for _ in range(args.runs):
            layout = Layout(DataPaths(tmp / "home")).ensure()
            with GuardedClient(HostPolicy(settings)) as http:
                remote = Mirror((hub.mirror,)).locate(http, REPO, FILE)
                start = time.perf_counter()
                digest, _, _ = Downloader(layout, http).fetch(remote, "bench")
                downloader_s.append(time.perf_counter() - start)
            layout.blob_path(digest).unlink()

        pull_s = []
        for _ in range(args.runs):
            store = Store(settings)
            start = time.perf_counter()
            installed = store.pull(f"hf:{REPO}/{FILE}", source="mirror")
            pull_s.append(time.perf_counter() - start)
            store.remove(installed.name)

        data = source.read_bytes()
        hash_s = []
        for _ in range(args.runs):
            start = time.perf_counter()
            hashlib.sha256(data).hexdigest()
            hash_s.append(time.perf_counter() - start)

    curl_best, curl_med = best_and_median(curl_s)
    dl_best, dl_med = best_and_median(downloader_s)
    pull_best, pull_med = best_and_median(pull_s)
    hash_best, _ = best_and_median(hash_s)
    print(f"file: {mb:.0f} MB over loopback, best of {args.runs} (median in brackets)")
    print(f"  curl              {mb / curl_best:8.0f} MB/s  ({mb / curl_med:.0f})")
    print(
        f"  bendi downloader  {mb / dl_best:8.0f} MB/s  ({mb / dl_med:.0f})   ratio to curl {curl_best / dl_best:.2f}"
    )
    print(
        f"  bendi pull        {mb / pull_best:8.0f} MB/s  ({mb / pull_med:.0f})   ratio to curl {curl_best / pull_best:.2f}"
    )
    print(
        f"  sha256 alone      {mb / hash_best:8.0f} MB/s   = {hash_best / dl_best:.0%} of the download time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
