"""Decode tok/s of bendi's batching engine vs a bare llama.cpp batch loop, 1 and N streams.

Both sides use the same model, context layout (one KV stream per sequence), threads and greedy
sampling; outputs have a fixed length (end-of-generation banned). Speed counts decode only: from
each stream's first token to its last. Usage:
  python benchmarks/bench_engine_batching.py [--tokens 128] [--streams 8] [--threads 2] [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bendi.engines.llamacpp.engine import LlamaCppEngine
from bendi.engines.llamacpp.model import ContextConfig, LlamaModel
from bendi.engines.messages import ChatMessage, GenerationRequest, SamplingParams, TextDelta
from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path


def direct(model: LlamaModel, prompts: list[list[int]], tokens: int) -> float:
    """Bare loop: prefill every prompt, then one llama_decode per step for all sequences."""
    import llama_cpp as lib

    lib.llama_memory_clear(model.memory, True)
    batch = lib.llama_batch_init(max(512, sum(map(len, prompts))), 0, 1)
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
    n, last = 0, []
    for seq, prompt in enumerate(prompts):
        for pos, token in enumerate(prompt):
            batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, pos, 1, 0
            batch.seq_id[n][0] = seq
            n += 1
        batch.logits[n - 1] = 1
        last.append(n - 1)
    batch.n_tokens = n
    assert lib.llama_decode(model.ctx, batch) == 0
    eog = set(model.end_of_generation_tokens)
    positions = [len(p) for p in prompts]
    started = time.perf_counter()
    for step in range(tokens):
        for seq, index in enumerate(last):
            # Greedy over the logits with end-of-generation excluded, like ignore_eos on our side.
            token = lib.llama_sampler_sample(chain, model.ctx, index)
            if token in eog:
                token = 0
            batch.token[seq], batch.pos[seq], batch.n_seq_id[seq], batch.logits[seq] = (
                token,
                positions[seq],
                1,
                1,
            )
            batch.seq_id[seq][0] = seq
            positions[seq] += 1
            model.piece(token)
        if step == tokens - 1:
            break
        batch.n_tokens = len(prompts)
        assert lib.llama_decode(model.ctx, batch) == 0
        last = list(range(len(prompts)))
    elapsed = time.perf_counter() - started
    lib.llama_sampler_free(chain)
    lib.llama_batch_free(batch)
    return len(prompts) * (tokens - 1) / elapsed


async def engine_run(engine: LlamaCppEngine, prompts: list[str], tokens: int) -> float:
    params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True)

    async def one(prompt: str) -> list[float]:
        stamps = []
        async for event in engine.generate(GenerationRequest(prompt, params)):
            if isinstance(event, TextDelta) and event.tokens:
                stamps.append(time.perf_counter())
        return stamps

    streams = await asyncio.gather(*(one(p) for p in prompts))
    first = min(s[0] for s in streams)
    end = max(s[-1] for s in streams)
    return sum(len(s) - 1 for s in streams) / (end - first)


def measure_one(side: str, streams: int, tokens: int, threads: int) -> float:
    """One measurement in this process: `side` is direct_1, engine_1, direct_n or engine_n."""
    path = bundled_model_path(BUNDLED_MODELS[0])
    assert path is not None
    n = streams if side.endswith("_n") else 1
    config = ContextConfig(context_tokens=512, sequences=streams, batch_tokens=512, threads=threads)
    engine = LlamaCppEngine(BUNDLED_MODELS[0].name, Path(path), config)
    texts = [
        engine.render_chat([ChatMessage("user", f"Tell story number {i} about a coal miner.")]).text
        for i in range(n)
    ]
    try:
        if side.startswith("engine"):
            return asyncio.run(engine_run(engine, texts, tokens))
        bare = LlamaModel(Path(path), config)
        try:
            return direct(bare, [engine.tokenize(t) for t in texts], tokens)
        finally:
            bare.close()
    finally:
        asyncio.run(engine.close())


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # internal: one measurement, printed
    args = parser.parse_args()
    if args.only:
        print(measure_one(args.only, args.streams, args.tokens, args.threads))
        return 0
    results: dict[str, list[float]] = {"direct_1": [], "engine_1": [], "direct_n": [], "engine_n": []}
    for _ in range(args.runs):  # interleaved, so machine load hits both sides alike
        for side, values in results.items():
            # Each measurement in a fresh process: two llama.cpp contexts in one process (the bare
            # loop's and the engine's) slowed the engine's batched decode by a third here.
            argv = [sys.executable, __file__, "--only", side, "--streams", str(args.streams),
                    "--tokens", str(args.tokens), "--threads", str(args.threads)]  # fmt: skip
            out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
            values.append(float(out.strip().splitlines()[-1]))
    med = {k: round(statistics.median(v), 1) for k, v in results.items()}
    summary = {
        "model": BUNDLED_MODELS[0].name, "threads": args.threads, "tokens": args.tokens,
        "streams": args.streams, **{f"{k}_tok_s": v for k, v in med.items()},
        "ratio_1": round(med["engine_1"] / med["direct_1"], 3),
        "ratio_n": round(med["engine_n"] / med["direct_n"], 3),
        "engine_n_over_engine_1": round(med["engine_n"] / med["engine_1"], 2),
    }  # fmt: skip
    if args.json:
        print(json.dumps(summary))
        return 0
    n = args.streams
    print(f"{summary['model']}, {args.threads} threads, {args.tokens} tokens/stream, median of {args.runs}")
    print(
        f"  1 stream : direct {med['direct_1']:6.1f} tok/s  engine {med['engine_1']:6.1f}  ratio {summary['ratio_1']}"
    )
    print(
        f"  {n} streams: direct {med['direct_n']:6.1f} tok/s  engine {med['engine_n']:6.1f}  ratio {summary['ratio_n']}"
    )
    print(f"  engine {n} streams / 1 stream: {summary['engine_n_over_engine_1']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
