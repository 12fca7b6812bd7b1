"""`bendi bench`: drive any OpenAI-compatible server with N concurrent streaming clients and report
TTFT, per-stream and aggregate tok/s, and errors; bounded in requests and time."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
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


def make_prompt(prompt_tokens: int, salt: object) -> str:
    # One FILLER is ~64 tokens for SmolLM2's byte-level tokenizer (fewer for Chinese-aware ones such as
    # DeepSeek's); the salt up front keeps prompts distinct, so nothing is served from the prefix cache
    # (it must differ between runs too: llama-server keeps old prompts' state in RAM and reuses it).
    return (
        f"[{salt}] " + FILLER * max(1, round(prompt_tokens / 64)) + "\nSummarise the rules above in detail."
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def one_request(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> RequestResult:
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    reported: int | None = None
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
                usage = payload.get("usage") or {}
                if isinstance(usage.get("completion_tokens"), int):
                    reported = usage["completion_tokens"]
                for choice in payload.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content") or delta.get("reasoning_content") or choice.get("text"):
                        tokens += 1
                        if first is None:
                            first = time.perf_counter()
    except httpx.HTTPError:
        return RequestResult(False, 0)
    end = time.perf_counter()
    # Tokens as the server counts them (stream_options.include_usage): a token whose text is empty
    # or held back (half a UTF-8 character, a possible stop string) sends no event of its own.
    counted = reported if reported is not None else tokens
    return RequestResult(True, 200, (first or end) - started, counted, end - (first or end))


async def run_level(url: str, model: str | None, concurrency: int, requests: int, prompt_tokens: int,
                    max_tokens: int, duration_s: float, api_key: str | None) -> LevelReport:  # fmt: skip
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    results: list[RequestResult] = []
    counter = iter(range(requests))
    run_id = secrets.token_hex(4)  # this run's prompts are new to the server
    deadline = time.perf_counter() + duration_s

    async with httpx.AsyncClient(
        timeout=httpx.Timeout(600.0), limits=limits, headers=headers, trust_env=False
    ) as client:

        async def worker() -> None:
            for index in counter:
                if time.perf_counter() > deadline:
                    return
                body: dict[str, Any] = {
                    "messages": [{"role": "user", "content": make_prompt(prompt_tokens, f"{run_id}-{index}")}],
                    "max_tokens": max_tokens, "temperature": 0.7, "stream": True, "ignore_eos": True,
                    "stream_options": {"include_usage": True},
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


@dataclass
class SecondTurnReport:
    history_tokens: int
    first_turn_ttft_s: float
    second_turn_ttft_s: float
    ratio: float
    others_between: int = 0  # other conversations served between the two turns


async def _stream_ttft(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[float, str]:
    started, first, text = time.perf_counter(), None, []
    async with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {(await response.aread())[:200]!r}")
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices") or []:
                    delta = choice.get("delta") or {}
                    piece = delta.get("content") or delta.get("reasoning_content") or ""
                    if piece and first is None:
                        first = time.perf_counter()
                    text.append(delta.get("content") or "")
    return (first or time.perf_counter()) - started, "".join(text)


async def second_turn(
    url: str, model: str | None, history_tokens: int, api_key: str | None, others_between: int = 0
) -> SecondTurnReport:
    """TTFT of a first turn carrying a long history vs the next turn of the same conversation: the
    second should reuse the cached prefix instead of recomputing it. `others_between` unrelated
    conversations run at once between the turns (as many as the server's slots: the
    conversation's own slot is reused meanwhile, as on a busy team server)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    messages: list[dict[str, str]] = [
        {"role": "system", "content": make_prompt(history_tokens, int(time.time()))},
        {"role": "user", "content": "Summarise the first rule."},
    ]
    endpoint = url.rstrip("/") + "/v1/chat/completions"

    def body() -> dict[str, Any]:
        payload: dict[str, Any] = {"messages": messages, "max_tokens": 32, "temperature": 0, "stream": True}
        return payload | ({"model": model} if model else {})

    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), headers=headers, trust_env=False) as client:
        first_s, answer = await _stream_ttft(client, endpoint, body())
        if others_between:
            await run_level(url, model, others_between, others_between, 64, 16, 600.0, api_key)
        messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And the second?"}]
        second_s, _ = await _stream_ttft(client, endpoint, body())
    return SecondTurnReport(
        history_tokens, round(first_s, 4), round(second_s, 4), round(second_s / first_s, 4), others_between
    )


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
    parser.add_argument(
        "--second-turn",
        action="store_true",
        help="instead of the sweep: TTFT of a conversation's first turn (long history) vs its second",
    )
    parser.add_argument("--history-tokens", type=int, default=1000, help="history length for --second-turn")
    parser.add_argument(
        "--others-between", type=int, default=0,
        help="for --second-turn: unrelated conversations run at once between the turns (e.g. the slot count)",
    )  # fmt: skip
    parser.add_argument("--api-key")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if args.second_turn:
        turn = asyncio.run(
            second_turn(args.url, args.model, args.history_tokens, args.api_key, args.others_between)
        )
        if args.json:
            print(json.dumps(asdict(turn)))
        else:
            print(f"history ~{turn.history_tokens} tokens: first turn TTFT {turn.first_turn_ttft_s:.3f}s, "
                  f"second turn {turn.second_turn_ttft_s:.3f}s ({turn.ratio:.0%} of the first)"
                  + (f", {turn.others_between} other conversations in between" if turn.others_between else ""))  # fmt: skip
        return 0
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
