"""What team mode costs: API-key authentication + authorization per request, and 8-client streaming
throughput with team mode on vs the same server with it off, measured in one run.

Usage: python benchmarks/bench_team_mode.py [--rounds 3] [--requests 2000] [--max-tokens 64] [--threads 2]
Targets (issue 14): auth adds < 1 ms p50 per request; 8-client tok/s with team mode >= 0.97x without.
Each round measures both servers (the first one alternating), so ratios compare the same minutes."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import httpx

from bendi.cli.bench import percentile, run_level

sys.path.insert(0, str(Path(__file__).parent))
from bench_serving import MODEL, free_port, wait_ready  # noqa: E402


def start(threads: int, home: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, BENDI_HOME=home, BENDI_THREADS=str(threads), BENDI_PARALLEL_SEQUENCES="8",
               BENDI_CONTEXT_TOKENS="2048")  # fmt: skip
    bendi = Path(sys.executable).parent / "bendi"
    proc = subprocess.Popen([str(bendi), "serve", "--port", str(port), "--model", MODEL], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def team_home() -> tuple[str, str]:
    """A data directory in team mode with a member holding an inference key (made as an operator would)."""
    from bendi.core.settings import load_settings
    from bendi.services import build_services

    home = tempfile.mkdtemp(prefix="bendi-bench-team-")
    services = build_services(load_settings(home=Path(home)))
    services.init_team("root", "bench-root-password")
    member, _ = services.access.accounts.create_user("member", password="bench-member-password")
    key, _ = services.access.keys.create(member, name="bench", scope="inference")
    return home, key


def request_latency_ms(url: str, key: str | None, requests: int) -> list[float]:
    """Sequential GET /api/version on one kept-alive connection: the route does no work of its own."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    times = []
    with httpx.Client(headers=headers, trust_env=False) as client:
        for _ in range(50):
            client.get(url + "/api/version").raise_for_status()
        for _ in range(requests):
            start = time.perf_counter()
            client.get(url + "/api/version").raise_for_status()
            times.append((time.perf_counter() - start) * 1000)
    return times


def in_process_check_us(home: str, key: str, requests: int) -> list[float]:
    """The decision alone, as the middleware makes it: key lookup, user, route match, policy."""
    from bendi.core.settings import load_settings
    from bendi.gateway.app import create_app
    from bendi.gateway.auth import flat_routes, route_template
    from bendi.services import build_services

    services = build_services(load_settings(home=Path(home)))
    app = create_app(services)
    routes = flat_routes(app.routes)
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "root_path": ""}
    access = services.access
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        assert access.team_mode
        principal = access.authenticator.from_bearer(key)
        template = route_template(routes, scope)
        assert template is not None
        access.policy.authorize_route(principal, "POST", template)
        times.append((time.perf_counter() - start) * 1e6)
    return times


def throughput(url: str, key: str | None, requests: int, max_tokens: int) -> float:
    time.sleep(3.0)  # let the other server's threads go quiet first: 2 cores, both servers resident
    report = asyncio.run(run_level(url, MODEL, 8, requests, 64, max_tokens, 600.0, key))
    assert not report.errors, f"requests failed: {report.errors}"
    return report.aggregate_tok_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000, help="latency samples per server per round")
    parser.add_argument("--streams", type=int, default=16, help="streaming requests per round (8 at a time)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    home_team, key = team_home()
    micro = in_process_check_us(home_team, key, args.requests)
    print(f"in-process decision (key lookup + route match + policy): p50 {percentile(micro, 0.5):.0f} us, "
          f"p99 {percentile(micro, 0.99):.0f} us")  # fmt: skip
    servers = {"off": start(args.threads, tempfile.mkdtemp(prefix="bendi-bench-single-")),
               "team": start(args.threads, home_team)}  # fmt: skip
    keys = {"off": None, "team": key}
    overheads, ratios = [], []
    try:
        for round_no in range(args.rounds):
            order = ("off", "team") if round_no % 2 == 0 else ("team", "off")
            p50, tok_s = {}, {}
            for name in order:
                url = servers[name][1]
                p50[name] = percentile(request_latency_ms(url, keys[name], args.requests), 0.5)
                tok_s[name] = throughput(url, keys[name], args.streams, args.max_tokens)
            overheads.append(p50["team"] - p50["off"])
            ratios.append(tok_s["team"] / tok_s["off"])
            print(f"round {round_no + 1}: request p50 off {p50['off']:.3f} ms, team {p50['team']:.3f} ms "
                  f"(+{overheads[-1]:.3f} ms); 8 streams off {tok_s['off']:.1f} tok/s, team {tok_s['team']:.1f} "
                  f"tok/s ({ratios[-1]:.3f}x)", flush=True)  # fmt: skip
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    print(
        f"\nauth + authorization + audit per request: median +{median(overheads):.3f} ms p50 (target < 1 ms)"
    )
    print(f"8-client streaming, team mode / off: median {median(ratios):.3f}x (target >= 0.97x); "
          f"per round {' '.join(f'{r:.3f}' for r in ratios)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
