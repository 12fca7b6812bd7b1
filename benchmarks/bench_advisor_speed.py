"""Predicted vs measured single-stream decode tok/s for every measured row in ../shared/reference.

The measured numbers are read from the reference document's JSON block at run time; this file only
says how each row's hardware and model map onto the advisor's inputs (assumptions marked). Run:
    .venv/bin/python benchmarks/bench_advisor_speed.py [--reference PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from bendi.catalog.catalog import Architecture, load_catalog
from bendi.catalog.estimate import ModelFacts
from bendi.catalog.gpus import find_gpu_spec
from bendi.catalog.speed import Placement, estimate_speed

GB = 10**9
GIB = 2**30
DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "shared/reference/hardware-and-models.md"

CAT = load_catalog()


def facts(name: str, weights_bytes: float | None = None, quant: str | None = None) -> ModelFacts:
    base = ModelFacts.from_variant(CAT.resolve(name))
    if weights_bytes is not None:
        base = replace(base, weights_bytes=int(weights_bytes), quant=quant or base.quant)
    return base


LLAMA2_70B = ModelFacts(
    "llama-2-70b-q4_0",
    int(38.9 * GB),
    69.0,
    Architecture("llama", 80, 8192, 64, 8, 128, 128, 28672, 32000, 4096),
)
LLAMA_7B = Architecture("llama", 32, 4096, 32, 32, 128, 128, 11008, 32000, 2048)
L8 = "deepseek-r1:8b-llama-distill"  # same architecture as Llama-3-8B (reference C.2)
L70 = "deepseek-r1:70b"
R1 = "deepseek-r1:671b-q4_k_m"


def gpu(name: str, count: int = 1, **kw: object) -> dict[str, object]:
    spec = find_gpu_spec(name)
    assert spec is not None, name
    return {
        "gpu_count": count,
        "gpu_bandwidth_gbps": spec.bandwidth_gbps,
        "gpu_tflops": spec.fp16_tflops,
        "unified_memory": spec.unified_memory,
        "gpu_bandwidth_efficiency": spec.bandwidth_efficiency,
        **kw,
    }


XEON_6454S = {"cpu_bandwidth_gbps": 307.2}  # 8 x DDR5-4800 per socket
KT = "ktransformers"
# row id -> (model facts, placement, context tokens in the cache, experts used)
ROWS: dict[str, tuple[ModelFacts, Placement, int, int | None]] = {
    "1": (
        facts(R1),
        Placement(KT, **gpu("RTX 4090D", experts_on_cpu=True), cpu_bandwidth_gbps=614.4, cpu_sockets=2),
        500,
        None,
    ),
    "2": (facts(R1), Placement(KT, **gpu("RTX 4090D", experts_on_cpu=True), **XEON_6454S), 500, None),
    "4": (
        facts(R1),
        Placement(KT, **gpu("RTX 4090D", experts_on_cpu=True), cpu_bandwidth_gbps=614.4, cpu_sockets=2),
        500,
        6,
    ),
    "5": (
        facts(R1),
        Placement(KT, **gpu("RTX 4090", experts_on_cpu=True), cpu_bandwidth_gbps=614.4, cpu_sockets=2),
        1100,
        None,
    ),
    "5b": (
        facts(R1),
        Placement(KT, **gpu("RTX 4090", experts_on_cpu=True), cpu_bandwidth_gbps=614.4, cpu_sockets=2),
        4200,
        None,
    ),
    "5c": (
        facts(R1),
        Placement(KT, **gpu("RTX 4090", experts_on_cpu=True), cpu_bandwidth_gbps=614.4, cpu_sockets=2),
        8000,
        None,
    ),
    # EPYC 9654: 12 x DDR5-4800 = 460.8 GB/s.
    "7": (
        facts(R1),
        Placement(KT, **gpu("RTX 4090", experts_on_cpu=True), cpu_bandwidth_gbps=460.8),
        1000,
        None,
    ),
    "7b": (
        facts(R1),
        Placement(KT, **gpu("RTX 4090", experts_on_cpu=True), cpu_bandwidth_gbps=460.8),
        10000,
        None,
    ),
    # Assumed: Threadripper Pro 7965WX with 8 x DDR5-4800 and an RTX 4090 (the guide says "~24GB VRAM").
    "8": (
        facts("deepseek-r1:671b-ud-q2_k_xl"),
        Placement(KT, **gpu("RTX 4090", experts_on_cpu=True), cpu_bandwidth_gbps=307.2),
        500,
        None,
    ),
    # llama.cpp of Feb 2025 had no -ot: plain layer offload, ~5 of 61 layers in 24 GB.
    "8b": (
        facts("deepseek-r1:671b-ud-q2_k_xl"),
        Placement("llama.cpp", **gpu("RTX 4090", gpu_layers=5), cpu_bandwidth_gbps=307.2),
        500,
        None,
    ),
    # 9950X, 2 x DDR5-6400 = 102.4 GB/s, 96 GB RAM (~86 GB for the model); the ~200 GB of CPU-side
    # experts page from a PCIe 5 SSD (~12 GB/s).
    "9": (
        facts("deepseek-r1:671b-ud-q2_k_xl"),
        Placement(
            KT,
            **gpu("RTX 3090 Ti", experts_on_cpu=True),
            cpu_bandwidth_gbps=102.4,
            spill_fraction=(200 - 86) / 200,
            disk_bandwidth_gbps=12.0,
        ),
        500,
        None,
    ),
    # Assumed: ubergarm's IQ2_K_R4 of V3-0324 (~226 GiB); "> 15" and "> 4" are lower bounds.
    "10": (
        facts(R1, 226 * GIB, "IQ2_K_R4"),
        Placement("ik_llama.cpp", **gpu("RTX 4090", experts_on_cpu=True), cpu_bandwidth_gbps=307.2),
        500,
        None,
    ),
    "11": (
        facts(R1, 226 * GIB, "IQ2_K_R4"),
        Placement(
            "ik_llama.cpp",
            **gpu("RTX 3090 Ti", experts_on_cpu=True),
            cpu_bandwidth_gbps=102.4,
            spill_fraction=(230 - 86) / 230,
            disk_bandwidth_gbps=12.0,
        ),
        500,
        None,
    ),
    "12": (
        facts(R1, 307.2 * GIB, "Q8_0*"),
        Placement("ik_llama.cpp", **gpu("RTX 3090", 16, gpu_layers=61)),
        128,
        None,
    ),
    "15": (facts(R1, 377 * GB, "MLX-4bit"), Placement("mlx", **gpu("M3 Ultra")), 13500, None),
    "18": (facts(R1, 377 * GB, "FP4"), Placement("sglang", **gpu("B200", 8, tensor_parallel=8)), 1500, None),
    "20": (facts(L8), Placement("llama.cpp", **gpu("RTX 3070", gpu_layers=99)), 256, None),
    "22": (facts(L8), Placement("llama.cpp", **gpu("RTX 4070 Ti", gpu_layers=99)), 256, None),
    "24": (facts(L8), Placement("llama.cpp", **gpu("RTX 3090", gpu_layers=99)), 256, None),
    "26": (facts(L8), Placement("llama.cpp", **gpu("RTX 4090", gpu_layers=99)), 256, None),
    "28": (facts(L70), Placement("llama.cpp", **gpu("RTX 3090", 2, gpu_layers=99)), 256, None),
    "30": (facts(f"{L70}-f16"), Placement("llama.cpp", **gpu("RTX 3090", 6, gpu_layers=99)), 256, None),
    "32": (facts(L8), Placement("llama.cpp", **gpu("M1")), 256, None),
    "34": (facts(L70), Placement("llama.cpp", **gpu("M1 Max")), 256, None),
    "36": (facts(f"{L8}-f16"), Placement("llama.cpp", **gpu("M2 Ultra")), 256, None),
    "38": (facts(f"{L70}-f16"), Placement("llama.cpp", **gpu("M2 Ultra")), 256, None),
    "40": (facts(L70), Placement("llama.cpp", **gpu("M3 Max")), 256, None),
    "42": (LLAMA2_70B, Placement("llama.cpp-2023", **gpu("A100 80GB", gpu_layers=99)), 256, None),
    "44": (LLAMA2_70B, Placement("llama.cpp-2023", **gpu("H100 PCIe", gpu_layers=99)), 256, None),
    "45": (
        ModelFacts("llama-7b-q4_0", int(3.83 * GB), 6.74, LLAMA_7B, "Q4_0"),
        Placement("llama.cpp-2023", **gpu("M2 Ultra")),
        64,
        None,
    ),
    "45b": (
        ModelFacts("llama-7b-q8_0", int(7.16 * GB), 6.74, LLAMA_7B, "Q8_0"),
        Placement("llama.cpp-2023", **gpu("M2 Ultra")),
        64,
        None,
    ),
    # Assumed: the "4GB AMD GPU" is an RX 6500 XT (144 GB/s) and RAM is 2 x DDR5-5600 (89.6 GB/s).
    "48": (
        facts("deepseek-r1:7b"),
        Placement("llama.cpp", **gpu("RX 6500 XT", gpu_layers=7), cpu_bandwidth_gbps=89.6),
        256,
        None,
    ),
    "49": (
        facts("deepseek-r1:7b"),
        Placement("llama.cpp", **gpu("RX 6500 XT", gpu_layers=16), cpu_bandwidth_gbps=89.6),
        256,
        None,
    ),
    "50": (
        facts("deepseek-r1:7b", 3.35 * GB, "IQ3_XS"),
        Placement("llama.cpp", **gpu("RX 6500 XT", gpu_layers=99)),
        256,
        None,
    ),
}


def reference_rows(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8")
    block = re.findall(r"```json\n(.*?)```", text, re.S)[-1]
    return [r for r in json.loads(block) if isinstance(r.get("tg_tps"), int | float)]


def _print_prefill(path: Path) -> None:
    """Prefill is reported, not gated: single-stream pp rows exist only for part of the table."""
    text = path.read_text(encoding="utf-8")
    rows = json.loads(re.findall(r"```json\n(.*?)```", text, re.S)[-1])
    errors = []
    print("\nprefill (pp) tok/s")
    for row in rows:
        rid = str(row.get("id"))
        if rid not in ROWS or not isinstance(row.get("pp_tps"), int | float):
            continue
        model, placement, ctx, experts = ROWS[rid]
        predicted = estimate_speed(model, placement, ctx, experts_used=experts).prefill_tokens_per_s
        error = (predicted - row["pp_tps"]) / row["pp_tps"]
        errors.append(abs(error))
        print(f"{rid:>4} {str(row['hardware'])[:44]:<44} {row['pp_tps']:9.1f} {predicted:9.1f} {error:+7.1%}")
    if errors:
        print(f"prefill rows: {len(errors)}  median |error|: {statistics.median(errors):.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    args = parser.parse_args()
    rows = reference_rows(args.reference)
    errors = []
    print(f"{'row':>4} {'model':<34} {'hardware':<44} {'measured':>9} {'predicted':>9} {'error':>7}")
    for row in rows:
        rid = str(row["id"])
        if rid not in ROWS:
            print(f"{rid:>4} not mapped: {row['hardware']}")
            continue
        model, placement, ctx, experts = ROWS[rid]
        predicted = estimate_speed(model, placement, ctx, experts_used=experts).decode_tokens_per_s
        measured = float(row["tg_tps"])  # type: ignore[arg-type]
        error = (predicted - measured) / measured
        errors.append(abs(error))
        print(
            f"{rid:>4} {str(row['model'])[:34]:<34} {str(row['hardware'])[:44]:<44} {measured:9.2f} "
            f"{predicted:9.2f} {error:+7.1%}"
        )
    median, worst = statistics.median(errors), max(errors)
    _print_prefill(args.reference)
    print(
        f"\nrows: {len(errors)}  median |error|: {median:.1%}  max |error|: {worst:.1%}  "
        f"(targets: median <= 20%, max <= 40%)"
    )
    return 0 if median <= 0.20 and worst <= 0.40 and len(errors) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
