"""Replica router: per-request overhead, spread over equal replicas, and a replica killed under load.

Real `bendi serve` processes on loopback: N replicas of the bundled model, a router in front of
replica 0 alone (overhead) and a router in front of all N (spread, kill). Overhead pairs a request
straight to replica 0 with the same request through the router, alternating so a machine whose load
changes affects both; the added latency is the median of per-pair differences. Spread sends distinct
conversations from several clients at once and counts what each replica got (/metrics). The kill
test streams from several clients, SIGKILLs one replica, and counts failures of requests that
started after the kill (target 0) and how the streams on it ended.
TTFT pairs streamed chats the same way (time to the first content chunk). Load averages are printed:
on a shared machine only the paired differences and ratios mean anything.
Usage: python benchmarks/bench_replicas.py [--replicas 3] [--pairs 40] [--requests 60] [--clients 6]
       [--overhead-only]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

MODEL = "smollm2:135m"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A `bendi serve` subprocess with its own data directory."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        home = tempfile.mkdtemp(prefix="bendi-bench-replicas-")
        bendi = Path(sys.executable).parent / "bendi"
        self.proc = subprocess.Popen([str(bendi), "serve", "--port", str(self.port), *args],
                                     env=dict(os.environ, BENDI_HOME=home, **env),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def ready(self) -> Server:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bendi serve {self.base} exited with {self.proc.returncode}")
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("bendi serve did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def replica(threads: int) -> Server:
    return Server(["--model", MODEL, "--parallel", "4", "--ctx", "1024"],
                  {"BENDI_THREADS": str(threads), "BENDI_PROMPT_CACHE_MB": "32"})  # fmt: skip


def router(replicas: list[Server]) -> Server:
    args = [arg for r in replicas for arg in ("--upstream", f"{MODEL}={r.base}")]
    return Server(args, {"BENDI_UPSTREAM_HEALTH_INTERVAL_S": "0.5", "BENDI_PARALLEL_SEQUENCES": "64"})


def ask(http: httpx.Client, base: str, content: str, max_tokens: int) -> float:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "temperature": 0}  # fmt: skip
    started = time.perf_counter()
    response = http.post(base + "/v1/chat/completions", json=body, timeout=120)
    response.raise_for_status()
    return time.perf_counter() - started


def rows(base: str, metric: str) -> dict[str, float]:
    text = httpx.get(base + "/metrics", timeout=10).text
    found = re.findall(rf'^{metric}{{model="[^"]*",replica="([^"]+)"}} (\S+)$', text, re.M)
    return {url: float(value) for url, value in found}


def first_token(http: httpx.Client, base: str, content: str) -> float:
    """Seconds to the first content chunk of a streamed chat (what a user waits for)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 8,
            "temperature": 0, "stream": True}  # fmt: skip
    started = time.perf_counter()
    with http.stream("POST", base + "/v1/chat/completions", json=body, timeout=120) as response:
        response.raise_for_status()
        lines = response.iter_lines()
        for line in lines:
            if '"content":"' in line and '"content":""' not in line:
                elapsed = time.perf_counter() - started
                for _ in lines:  # read to the end: the connection is reused
                    pass
                return elapsed
    raise RuntimeError("the stream had no content")


def paired(direct: Server, front: Server, pairs: int, measure) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    """`measure(base)` straight to the replica and through the router, alternating which goes first."""
    direct_s, routed_s = [], []
    for i in range(pairs):
        first, second = (direct, front) if i % 2 == 0 else (front, direct)
        a, b = measure(first.base), measure(second.base)
        d, r = (a, b) if first is direct else (b, a)
        direct_s.append(d)
        routed_s.append(r)
    return direct_s, routed_s


def overhead(direct: Server, front: Server, pairs: int) -> None:
    with httpx.Client() as http:
        for _ in range(5):  # warm both paths (connections, the replica's prefix cache)
            ask(http, direct.base, "Say hi.", 1)
            ask(http, front.base, "Say hi.", 1)
        cpu = psutil.Process(front.proc.pid)
        user_before, system_before = cpu.cpu_times()[:2]
        direct_s, routed_s = paired(direct, front, pairs, lambda base: ask(http, base, "Say hi.", 1))
        # The router's own CPU per routed request (user + system), which other processes cannot inflate.
        user_after, system_after = cpu.cpu_times()[:2]
        user_ms, system_ms = (
            (user_after - user_before) / pairs * 1000,
            (system_after - system_before) / pairs * 1000,
        )
        router_cpu_ms = user_ms + system_ms
        ttft_direct, ttft_routed = paired(
            direct, front, pairs, lambda base: first_token(http, base, "Say hi.")
        )
    added_ms = statistics.median(r - d for d, r in zip(direct_s, routed_s, strict=True)) * 1000
    d50, r50 = statistics.median(direct_s) * 1000, statistics.median(routed_s) * 1000
    print(f"{'request p50 (max_tokens 1), ms':<42}{d50:>12.2f}{r50:>12.2f}{r50 / d50:>10.3f}")
    print(f"{'router overhead p50 (paired), ms':<42}{'':>12}{added_ms:>12.2f}{'< 2 ms':>10}  "
          f"{'PASS' if added_ms < 2 else 'FAIL'}")  # fmt: skip
    print(f"{'router CPU per request, ms':<42}{'':>12}{router_cpu_ms:>12.2f}  "
          f"(user {user_ms:.2f} + system {system_ms:.2f})")  # fmt: skip
    t_added = statistics.median(r - d for d, r in zip(ttft_direct, ttft_routed, strict=True)) * 1000
    t_d, t_r = statistics.median(ttft_direct) * 1000, statistics.median(ttft_routed) * 1000
    print(f"{'TTFT p50, streamed, ms':<42}{t_d:>12.2f}{t_r:>12.2f}{t_r / t_d:>10.3f}")
    print(f"{'TTFT added p50 (paired), ms':<42}{'':>12}{t_added:>12.2f}{'< 5 ms':>10}  "
          f"{'PASS' if t_added < 5 else 'FAIL'}")  # fmt: skip


def spread(direct: Server, front: Server, replicas: list[Server], requests: int, clients: int) -> None:
    def run(base: str) -> float:
        with httpx.Client() as http, ThreadPoolExecutor(clients) as pool:
            started = time.perf_counter()
            list(pool.map(lambda i: ask(http, base, f"Conversation {i}: name a colour and a fruit.", 16),
                          range(requests)))  # fmt: skip
            return requests / (time.perf_counter() - started)

    before = rows(front.base, "bendi_replica_requests_total")
    direct_rps, routed_rps = run(direct.base), run(front.base)
    after = rows(front.base, "bendi_replica_requests_total")
    counts = [after[r.base] - before.get(r.base, 0) for r in replicas]
    ideal = requests / len(replicas)
    worst = max(abs(c - ideal) / ideal * 100 for c in counts)
    print(f"{f'throughput, {clients} clients, req/s':<42}{direct_rps:>12.2f}{routed_rps:>12.2f}"
          f"{routed_rps / direct_rps:>10.2f}")  # fmt: skip
    print(f"{'requests per replica (ideal ' + f'{ideal:.0f})':<42}{'':>12}{'/'.join(f'{c:.0f}' for c in counts):>12}"
          f"{f'±{worst:.0f}%':>10}  {'PASS' if worst <= 10 else 'FAIL'}")  # fmt: skip


def stream(http: httpx.Client, base: str, content: str) -> str | None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 48,
            "temperature": 0.7, "stream": True}  # fmt: skip
    try:
        with http.stream("POST", base + "/v1/chat/completions", json=body, timeout=120) as response:
            if response.status_code != 200:
                return f"HTTP {response.status_code}"
            for line in response.iter_lines():
                if line.startswith("data: {") and '"error"' in line:
                    return str(json.loads(line[6:])["error"].get("message"))
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def kill_under_load(front: Server, victim: Server, clients: int, after_s: float) -> None:
    results: list[tuple[float, str | None]] = []
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client() as http:
            i = 0
            while not stop.is_set():
                started = time.monotonic()
                results.append((started, stream(http, front.base, f"Client {n} story {i}: once upon a time")))
                i += 1

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, n) for n in range(clients)]
        time.sleep(3.0)
        victim.proc.kill()
        killed = time.monotonic()
        time.sleep(after_s)
        stop.set()
        for future in futures:
            future.result()
    after = [error for started, error in results if started > killed]
    broken = [error for started, error in results if started <= killed and error]
    failed = sum(1 for error in after if error)
    print(f"{'requests started after the kill: failed':<42}{'':>12}{f'{failed}/{len(after)}':>12}{'0':>10}  "
          f"{'PASS' if failed == 0 and after else 'FAIL'}")  # fmt: skip
    print(f"{'streams on it at the kill: ended with error':<42}{'':>12}{len(broken):>12}")
    if broken:
        print(f"  e.g.: {broken[0][:150]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads per replica")
    parser.add_argument("--after-kill-s", type=float, default=8.0)
    parser.add_argument("--overhead-only", action="store_true", help="skip the spread and kill parts")
    args = parser.parse_args()
    replicas = [replica(args.threads) for _ in range(args.replicas)]
    servers = list(replicas)
    try:
        for server in replicas:
            server.ready()
        single, spread_router = router(replicas[:1]), router(replicas)
        servers += [single.ready(), spread_router.ready()]
        print(f"{args.replicas} replicas of {MODEL}, {os.cpu_count()} CPUs (timings share the machine)")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{'':<42}{'direct':>12}{'router':>12}{'ratio':>10}")
        overhead(replicas[0], single, args.pairs)
        if not args.overhead_only:
            spread(replicas[0], spread_router, replicas, args.requests, args.clients)
            kill_under_load(spread_router, replicas[-1], args.clients, args.after_kill_s)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
