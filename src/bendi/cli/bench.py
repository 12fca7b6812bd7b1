"""`bendi bench`: drive any OpenAI-compatible server with N concurrent streaming clients and report
TTFT, per-stream and aggregate tok/s, and errors; bounded in requests and time."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:11435"
FILLER = "煤矿安全生产必须坚持安全第一、预防为主、综合治理的方针。Safety first. "


@dataclass
class RequestResult:
    ok: bool
    status: int
    ttft_s: float = 0.0
    tokens: int = 0
    duration_s: float = 0.0
    retry_after: str | None = None


@dataclass
class LevelReport:
    concurrency: int
    requests: int
    ok: int
    errors: dict[str, int] = field(default_factory=dict)
    ttft_p50_s: float = 0.0
    ttft_p99_s: float = 0.0
    per_stream_tok_s: float = 0.0
    aggregate_tok_s: float = 0.0
    wall_s: float = 0.0


def make_prompt(prompt_tokens: int, salt: int) -> str:
    # ~1 token per 1.5 characters for this mixed text; salt keeps prompts distinct (no prefix reuse).
    text = f"[{salt}] " + FILLER * max(1, prompt_tokens * 3 // (2 * len(FILLER)))
    return text + "\nSummarise the rules above in detail."


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def one_request(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> RequestResult:
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    try:
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return RequestResult(
                    False, response.status_code, retry_after=response.headers.get("retry-after")
                )
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                payload = json.loads(line[6:])
                if "error" in payload:
                    return RequestResult(False, 599)
                for choice in payload.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content") or delta.get("reasoning_content") or choice.get("text"):
                        tokens += 1
                        if first is None:
                            first = time.perf_counter()
    except httpx.HTTPError:
        return RequestResult(False, 0)
    end = time.perf_counter()
    return RequestResult(True, 200, (first or end) - started, tokens, end - (first or end))


async def run_level(url: str, model: str | None, concurrency: int, requests: int, prompt_tokens: int,
                    max_tokens: int, duration_s: float, api_key: str | None) -> LevelReport:  # fmt: skip
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    results: list[RequestResult] = []
    counter = iter(range(requests))
    deadline = time.perf_counter() + duration_s

    async with httpx.AsyncClient(
        timeout=httpx.Timeout(600.0), limits=limits, headers=headers, trust_env=False
    ) as client:

        async def worker() -> None:
            for index in counter:
                if time.perf_counter() > deadline:
                    return
                body: dict[str, Any] = {
                    "messages": [{"role": "user", "content": make_prompt(prompt_tokens, index)}],
                    "max_tokens": max_tokens, "temperature": 0.7, "stream": True, "ignore_eos": True,
                }  # fmt: skip
                if model:
                    body["model"] = model
                results.append(await one_request(client, url.rstrip("/") + "/v1/chat/completions", body))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    good = [r for r in results if r.ok]
    errors: dict[str, int] = {}
    for r in results:
        if not r.ok:
            errors[str(r.status)] = errors.get(str(r.status), 0) + 1
    per_stream = [(r.tokens - 1) / r.duration_s for r in good if r.tokens > 1 and r.duration_s > 0]
    return LevelReport(
        concurrency=concurrency, requests=len(results), ok=len(good), errors=errors,
        ttft_p50_s=round(percentile([r.ttft_s for r in good], 0.5), 4),
        ttft_p99_s=round(percentile([r.ttft_s for r in good], 0.99), 4),
        per_stream_tok_s=round(statistics.mean(per_stream), 2) if per_stream else 0.0,
        aggregate_tok_s=round(sum(r.tokens for r in good) / wall, 2) if wall else 0.0,
        wall_s=round(wall, 2),
    )  # fmt: skip


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="load-test an OpenAI-compatible server (bendi or any other)")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server base URL (default {DEFAULT_URL})")
    parser.add_argument("--model", help="model name to request")
    parser.add_argument(
        "--concurrency", default="1,2,4,8", help="comma-separated client counts (e.g. 1,2,4,8,16)"
    )
    parser.add_argument(
        "--requests", type=int, default=0, help="requests per level (default: 2 × concurrency)"
    )
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--duration-s", type=float, default=120.0, help="stop starting requests after this long"
    )
    parser.add_argument("--api-key")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    levels = [int(x) for x in str(args.concurrency).split(",") if x.strip()]
    reports = []
    for level in levels:
        requests = args.requests or 2 * level
        report = asyncio.run(run_level(args.url, args.model, level, requests, args.prompt_tokens, args.max_tokens,
                                       args.duration_s, args.api_key))  # fmt: skip
        reports.append(report)
        if not args.json:
            errs = ", ".join(f"{k}×{v}" for k, v in report.errors.items()) or "none"
            print(f"c={level:<3} ok {report.ok}/{report.requests}  TTFT p50 {report.ttft_p50_s:.3f}s "
                  f"p99 {report.ttft_p99_s:.3f}s  per-stream {report.per_stream_tok_s:6.1f} tok/s  "
                  f"aggregate {report.aggregate_tok_s:6.1f} tok/s  errors {errs}", flush=True)  # fmt: skip
    if args.json:
        print(json.dumps([asdict(r) for r in reports]))
    return 0 if all(r.ok for r in reports) else 1
