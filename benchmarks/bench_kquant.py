"""The quantization formats people run: bendi vs llama.cpp's own `llama-server -np 8` on Gemma 3 270M
Q4_K_M and SmolLM2-135M Q8_0, at 1/4/8 concurrent streaming clients, measured by `bendi bench`.

Usage: python benchmarks/bench_kquant.py [--models gemma3-q4_k_m,smollm2-q8_0] [--levels 1,4,8]
       [--rounds 2] [--requests-per-client 2] [--max-tokens 128] [--threads 2] [--variant KEY=VALUE ...]
Both servers of a model stay up; every level is measured on both, the first server alternating
between levels and rounds, so a change in the machine's load hits both alike. A ratio is bendi /
llama-server within one level of one round; the table shows their median and each one, with the
load average (1 min) when each pair was taken. Build the reference first:
bash benchmarks/build_llama_server.sh (it also builds llama-quantize for the Q8_0 model)."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from bendi.cli.bench import run_level

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kquant"))
from kquant_models import gemma3_q4_k_m, smollm2_quantized  # noqa: E402

MODELS: dict[str, Callable[[], Path]] = {
    "gemma3-q4_k_m": gemma3_q4_k_m,
    "smollm2-q8_0": lambda: smollm2_quantized("Q8_0"),
    "smollm2-q4_k_m": lambda: smollm2_quantized("Q4_K_M"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_average() -> float:
    return os.getloadavg()[0]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def start_bendi(model: Path, threads: int, extra_env: dict[str, str] | None = None,
                context_tokens: int = 2048) -> tuple[subprocess.Popen[bytes], str]:  # fmt: skip
    port = free_port()
    env = dict(os.environ, BENDI_HOME=tempfile.mkdtemp(prefix="bendi-bench-"), BENDI_THREADS=str(threads),
               BENDI_PARALLEL_SEQUENCES="8", BENDI_CONTEXT_TOKENS=str(context_tokens))  # fmt: skip
    env.update(extra_env or {})
    bendi = Path(sys.executable).parent / "bendi"
    proc = subprocess.Popen([str(bendi), "serve", "--port", str(port), "--model", str(model)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def start_llama_server(binary: str, model: Path, threads: int,
                       context_tokens: int = 2048) -> tuple[subprocess.Popen[bytes], str]:  # fmt: skip
    port = free_port()
    proc = subprocess.Popen([binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-np", "8",
                             "-c", str(context_tokens * 8), "-t", str(threads), "-tb", str(threads),
                             "--alias", model.name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(url: str, model: str, level: int, requests: int, max_tokens: int) -> dict[str, Any]:
    report = asyncio.run(run_level(url, model, level, requests, 64, max_tokens, 600.0, None))
    return {"aggregate": report.aggregate_tok_s, "ttft_p50": report.ttft_p50_s,
            "errors": sum(report.errors.values())}  # fmt: skip


def bench_model(name: str, path: Path, args: argparse.Namespace) -> list[str]:
    levels = [int(x) for x in args.levels.split(",")]
    ref_proc, ref_url = start_llama_server(args.llama_server, path, args.threads)
    proc, url = start_bendi(path, args.threads)
    procs = [proc, ref_proc]
    sides = [("llama-server", ref_url), ("bendi", url)]
    if args.variant:  # a third contender: bendi with extra environment, in the same rotation
        variant_proc, variant_url = start_bendi(
            path, args.threads, dict(kv.split("=", 1) for kv in args.variant)
        )
        procs.append(variant_proc)
        sides.append(("variant", variant_url))
    rows: dict[int, list[tuple[float, float, float, float, float]]] = {level: [] for level in levels}
    variant_ratios: dict[int, list[float]] = {level: [] for level in levels}
    try:
        turn = 0
        for round_index in range(args.rounds):
            for level in levels:
                results: dict[str, dict[str, Any]] = {}
                load = load_average()
                for side, side_url in sides[turn % len(sides) :] + sides[: turn % len(sides)]:
                    results[side] = measure(side_url, path.name, level, args.requests_per_client * level,
                                            args.max_tokens)  # fmt: skip
                turn += 1
                b, r = results["bendi"], results["llama-server"]
                rows[level].append((b["aggregate"], r["aggregate"], load, b["ttft_p50"], r["ttft_p50"]))
                if "variant" in results:
                    variant_ratios[level].append(results["variant"]["aggregate"] / max(b["aggregate"], 1e-9))
                print(f"{name} round {round_index + 1} c={level} load {load:.1f}: "
                      + "  ".join(f"{side} {result}" for side, result in results.items()),
                      file=sys.stderr, flush=True)  # fmt: skip
    finally:
        stop(*procs)
    lines = []
    for level in levels:
        ratios = [b / r for b, r, *_ in rows[level] if r > 0]
        lines.append(
            f"{name:>15} {level:>7} {median(x[0] for x in rows[level]):>12.1f} {median(x[1] for x in rows[level]):>13.1f}"
            f" {median(ratios):>6.2f}   {' '.join(f'{x:.2f}' for x in ratios):<18}"
            f" {' '.join(f'{x[2]:.1f}' for x in rows[level]):<14}"
            f" {median(x[3] for x in rows[level]):.2f}/{median(x[4] for x in rows[level]):.2f} s"
            + (
                f"   variant/bendi {' '.join(f'{x:.2f}' for x in variant_ratios[level])}"
                if args.variant
                else ""
            )
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-server", default="/tmp/llama-server-build/llama-server")
    parser.add_argument("--models", default="gemma3-q4_k_m,smollm2-q8_0", help=f"of {', '.join(MODELS)}")
    parser.add_argument("--levels", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", nargs="*", default=[], metavar="KEY=VALUE",
                        help="also run bendi with this environment, in the same rotation, as variant/bendi")  # fmt: skip
    args = parser.parse_args()
    if not Path(args.llama_server).is_file():
        print(
            f"no llama-server at {args.llama_server}: bash benchmarks/build_llama_server.sh", file=sys.stderr
        )
        return 2
    lines = []
    for name in args.models.split(","):
        path = MODELS[name]()
        print(f"{name}: {path}", file=sys.stderr, flush=True)
        lines += bench_model(name, path, args)
    print(f"{'model':>15} {'clients':>7} {'bendi tok/s':>12} {'llama-server':>13} {'ratio':>6}   "
          f"{'per-round ratios':<18} {'load (1 min)':<14} TTFT p50 bendi/llama-server")  # fmt: skip
    print("\n".join(lines))
    print("targets: 8 clients >= 1.05x, 1 client >= 1.0x (ratios from the same run; see the load average)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
