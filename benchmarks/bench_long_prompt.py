"""Time to first token of a long knowledge-base prompt (~2.5k tokens: bendi's answer rules and
retrieved articles of the mining-safety demo library) on an idle server and while 7 other streams
generate: bendi vs llama.cpp's own `llama-server -np 8`, same model, same prompts, one run.

Each trial sends a prompt neither server has seen (other articles; the fixed system rules are the
same every time, as in `bendi kb`), first to an idle server, then, with another prompt, while 7
streams (short prompts, `ignore_eos`) are generating. The servers alternate which goes first. Also
reported: the longest pause the 7 streams saw while the long prompt was being read (what its
prefill costs the others) and their tokens per second over that window. They write English: a
Chinese character is often two or three byte tokens, held back until complete, which would count
as pauses of the server.

Usage: python benchmarks/bench_long_prompt.py [--model smollm2|gemma3-q4_k_m|smollm2-q8_0]
       [--trials 4] [--prompt-tokens 2500] [--threads 2] [--bendi-env KEY=VALUE ...]
Targets (issue 17): loaded TTFT <= 1.5x idle, and lower than llama-server's loaded TTFT."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import httpx
from bench_kquant import start_bendi, start_llama_server, stop
from bench_speculative import FILES, articles

from bendi.knowledge.answer import SYSTEM_PROMPT
from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kquant"))
from kquant_models import gemma3_q4_k_m, smollm2_quantized  # noqa: E402

MODELS: dict[str, Callable[[], Path]] = {
    "smollm2": lambda: bundled_model_path(BUNDLED_MODELS[0]),
    "gemma3-q4_k_m": gemma3_q4_k_m,
    "smollm2-q8_0": lambda: smollm2_quantized("Q8_0"),
}
BACKGROUND_STREAMS = 7
CONTEXT_TOKENS = 4096


def all_articles() -> list[tuple[str, str, str]]:
    return [(name.split("-", 1)[1].removesuffix(".txt"), n, t) for name in FILES for n, t in articles(name)]


def long_prompts(count: int, target_tokens: int, count_tokens: Callable[[str], int]) -> list[str]:
    """`count` user messages of numbered sources, each from articles no other message uses, grown to
    about `target_tokens` (counted by the reference server's tokenizer, the model's own)."""
    pool = all_articles()
    out, cursor = [], 0
    for _ in range(count):
        blocks: list[str] = []
        while True:
            if cursor >= len(pool):
                raise SystemExit(
                    f"the library has too few articles for {count} prompts of {target_tokens} tokens"
                )
            title, number, text = pool[cursor]
            cursor += 1
            blocks.append(f"[{len(blocks) + 1}] (文件 file: {title}.txt | {number})\n{number}{text}")
            user = (f"<sources>\n{chr(10).join(blocks)}\n</sources>\n\nQuestion: 《{title}》{number}是怎么规定的？"
                    "请引用原文回答。\nAnswer with citations like [1].")  # fmt: skip
            if count_tokens(SYSTEM_PROMPT) + count_tokens(user) >= target_tokens:
                out.append(user)
                break
    return out


def chat_body(model: str, user: str, max_tokens: int, background: bool = False) -> dict[str, object]:
    messages = [{"role": "user", "content": user}]
    if not background:
        messages.insert(0, {"role": "system", "content": SYSTEM_PROMPT})
    return {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "ignore_eos": background, "stream_options": {"include_usage": True}}  # fmt: skip


async def stream_tokens(client: httpx.AsyncClient, url: str, body: dict[str, object],
                        stamps: list[float], usage: dict[str, int]) -> None:  # fmt: skip
    """Stream one chat completion, appending the time of every content chunk to `stamps`."""
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code} {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            payload = json.loads(line[6:])
            if payload.get("usage"):
                usage.update(payload["usage"])
            for choice in payload.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("reasoning_content"):
                    stamps.append(time.perf_counter())


async def time_to_first_token(
    client: httpx.AsyncClient, url: str, model: str, user: str
) -> tuple[float, int]:
    stamps: list[float] = []
    usage: dict[str, int] = {}
    started = time.perf_counter()
    await stream_tokens(client, url, chat_body(model, user, 8), stamps, usage)
    return stamps[0] - started, usage.get("prompt_tokens", 0)


async def loaded_trial(url: str, model: str, user: str, salt: str) -> dict[str, float]:
    """TTFT of `user` while 7 streams generate; the 7 streams' longest pause and tok/s meanwhile."""
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(timeout=600, limits=limits, trust_env=False) as client:
        stamps: list[list[float]] = [[] for _ in range(BACKGROUND_STREAMS)]
        tasks = [
            asyncio.create_task(stream_tokens(
                client, url, chat_body(model, f"[{salt}-{i}] Write a long article on coal mine safety, point by point.", 1500,
                                       background=True), stamps[i], {}))
            for i in range(BACKGROUND_STREAMS)
        ]  # fmt: skip
        while min(len(s) for s in stamps) < 16:  # all 7 decoding steadily
            if any(t.done() for t in tasks):
                for t in tasks:
                    if t.done() and t.exception():
                        raise t.exception()  # type: ignore[misc]
            await asyncio.sleep(0.02)
        started = time.perf_counter()
        ttft, prompt_tokens = await time_to_first_token(client, url, model, user)
        ended = started + ttft
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    gaps, produced = [], 0
    for s in stamps:
        window = [t for t in s if started <= t <= ended]
        produced += len(window)
        before = [t for t in s if t < started]
        points = before[-1:] + window + [t for t in s if t > ended][:1]
        gaps += [b - a for a, b in zip(points, points[1:], strict=False)]
    return {"ttft": ttft, "prompt_tokens": prompt_tokens, "max_pause": max(gaps, default=0.0),
            "others_tok_s": produced / ttft if ttft else 0.0}  # fmt: skip


async def idle_trial(url: str, model: str, user: str) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=600, trust_env=False) as client:
        ttft, prompt_tokens = await time_to_first_token(client, url, model, user)
    return {"ttft": ttft, "prompt_tokens": prompt_tokens}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-server", default="/tmp/llama-server-build/llama-server")
    parser.add_argument("--model", default="smollm2", choices=list(MODELS))
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=2500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bendi-env", action="append", default=[], help="KEY=VALUE for bendi's server")
    args = parser.parse_args()
    if not Path(args.llama_server).is_file():
        print(
            f"no llama-server at {args.llama_server}: bash benchmarks/build_llama_server.sh", file=sys.stderr
        )
        return 2
    path = MODELS[args.model]()
    extra_env = dict(item.split("=", 1) for item in args.bendi_env)
    ref_proc, ref_url = start_llama_server(
        args.llama_server, path, args.threads, context_tokens=CONTEXT_TOKENS
    )
    proc, url = start_bendi(path, args.threads, extra_env, context_tokens=CONTEXT_TOKENS)
    try:

        def count_tokens(text: str) -> int:
            reply = httpx.post(ref_url + "/tokenize", json={"content": text}, timeout=60, trust_env=False)
            return len(reply.json()["tokens"])

        prompts = long_prompts(2 * args.trials + 1, args.prompt_tokens, count_tokens)
        sides = {"bendi": url, "llama-server": ref_url}
        rows: dict[str, dict[str, list[dict[str, float]]]] = {s: {"idle": [], "loaded": []} for s in sides}
        for side_url in sides.values():  # warm-up: the system rules cached, threads spun up
            asyncio.run(idle_trial(side_url, path.name, prompts[-1]))
        for trial in range(args.trials):
            order = list(sides) if trial % 2 == 0 else list(sides)[::-1]
            for side in order:
                idle = asyncio.run(idle_trial(sides[side], path.name, prompts[2 * trial]))
                loaded = asyncio.run(
                    loaded_trial(sides[side], path.name, prompts[2 * trial + 1], f"{trial}{side}")
                )
                rows[side]["idle"].append(idle)
                rows[side]["loaded"].append(loaded)
                print(f"trial {trial + 1} {side}: idle {idle}  loaded {loaded}  load {os.getloadavg()[0]:.1f}",
                      file=sys.stderr, flush=True)  # fmt: skip
    finally:
        stop(proc, ref_proc)

    def med(side: str, kind: str, key: str) -> float:
        return median(r[key] for r in rows[side][kind])

    print(f"model {args.model}, {args.threads} threads, prompts of ~{args.prompt_tokens} tokens "
          f"(as counted by each server: bendi {med('bendi', 'idle', 'prompt_tokens'):.0f}, "
          f"llama-server {med('llama-server', 'idle', 'prompt_tokens'):.0f}), {args.trials} trials, medians")  # fmt: skip
    print(f"{'server':<13} {'TTFT idle':>10} {'TTFT +7 streams':>16} {'loaded/idle':>12} "
          f"{'longest pause of the 7':>23} {'their tok/s meanwhile':>22}")  # fmt: skip
    for side in sides:
        idle, loaded = med(side, "idle", "ttft"), med(side, "loaded", "ttft")
        print(f"{side:<13} {idle:>9.3f}s {loaded:>15.3f}s {loaded / idle:>11.2f}x "
              f"{med(side, 'loaded', 'max_pause'):>22.3f}s {med(side, 'loaded', 'others_tok_s'):>22.1f}")  # fmt: skip
    ratio = med("bendi", "loaded", "ttft") / med("llama-server", "loaded", "ttft")
    print(
        f"bendi / llama-server, loaded TTFT: {ratio:.2f}x   "
        "targets: loaded <= 1.5x idle, and below llama-server's loaded TTFT"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
