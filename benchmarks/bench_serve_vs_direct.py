"""Single-stream decode tok/s: `bendi serve` over HTTP (streaming) vs a direct llama-cpp-python loop.

Both use the same model, prompt, thread count and greedy decoding. Decode speed is measured from
the first to the last generated token, so prompt processing and HTTP set-up are excluded on both
sides. Usage: python benchmarks/bench_serve_vs_direct.py [--tokens 128] [--runs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path

PROMPT = "Write a long, detailed story about a coal miner who becomes a safety inspector."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def direct_loop(model: Path, threads: int, tokens: int, runs: int) -> list[float]:
    from llama_cpp import Llama

    llm = Llama(str(model), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    prompt = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    speeds = []
    for _ in range(runs + 1):  # the first run warms caches and is dropped
        stamps = []
        for _chunk in llm.create_completion(prompt, max_tokens=tokens, temperature=0, stream=True):
            stamps.append(time.perf_counter())
        speeds.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    return speeds[1:]


def served(model_name: str, threads: int, tokens: int, runs: int) -> list[float]:
    port = free_port()
    home = tempfile.mkdtemp(prefix="bendi-bench-")
    env = dict(os.environ, BENDI_HOME=home, BENDI_THREADS=str(threads))
    bendi = Path(sys.executable).parent / "bendi"
    proc = subprocess.Popen([str(bendi), "serve", "--port", str(port), "--model", model_name], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = {"model": model_name, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens,
                "temperature": 0, "stream": True}  # fmt: skip
        speeds = []
        for _ in range(runs + 1):
            stamps = []
            with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=120) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                        stamps.append(time.perf_counter())
            speeds.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
        return speeds[1:]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = bundled_model_path(BUNDLED_MODELS[0])
    assert model is not None
    direct = statistics.median(direct_loop(model, args.threads, args.tokens, args.runs))
    serve = statistics.median(served(BUNDLED_MODELS[0].name, args.threads, args.tokens, args.runs))
    result = {"model": BUNDLED_MODELS[0].name, "threads": args.threads, "tokens": args.tokens,
              "direct_llama_cpp_tok_s": round(direct, 1), "bendi_serve_http_tok_s": round(serve, 1),
              "ratio": round(serve / direct, 3), "target_ratio": 0.95}  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"model {result['model']}, {args.threads} threads, {args.tokens} tokens, median of {args.runs} runs"
        )
        print(f"  direct llama-cpp-python loop : {direct:7.1f} tok/s")
        print(f"  bendi serve (HTTP, streaming): {serve:7.1f} tok/s")
        print(f"  ratio serve/direct           : {serve / direct:7.3f}   (target >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
