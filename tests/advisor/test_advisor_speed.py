"""The speed model: roofline behaviour, and the calibration against the reference's measured rows."""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import pytest

from bendi.catalog.catalog import load_catalog
from bendi.catalog.estimate import ModelFacts
from bendi.catalog.speed import Placement, active_weight_bytes, estimate_speed

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_advisor_speed.py"


def facts(name: str) -> ModelFacts:
    return ModelFacts.from_variant(load_catalog().resolve(name))


def test_decode_scales_with_bandwidth_and_model_size() -> None:
    seven, fourteen = facts("deepseek-r1:7b"), facts("deepseek-r1:14b")
    slow, fast = Placement("llama.cpp", cpu_bandwidth_gbps=50), Placement("llama.cpp", cpu_bandwidth_gbps=100)
    assert estimate_speed(seven, fast).decode_tokens_per_s == pytest.approx(
        2 * estimate_speed(seven, slow).decode_tokens_per_s, rel=0.05
    )
    assert (
        estimate_speed(fourteen, slow).decode_tokens_per_s < estimate_speed(seven, slow).decode_tokens_per_s
    )


def test_moe_reads_only_active_experts() -> None:
    r1 = facts("deepseek-r1:671b-q4_k_m")
    dense, routed = active_weight_bytes(r1)
    # ~37 B of 671 B parameters are read per token: ~5.5% of the file, not all of it.
    assert 0.04 < (dense + routed) / r1.weights_bytes < 0.08
    hybrid = Placement(
        "llama.cpp",
        gpu_count=1,
        gpu_bandwidth_gbps=1008,
        gpu_layers=61,
        experts_on_cpu=True,
        cpu_bandwidth_gbps=460.8,
    )
    assert 5 < estimate_speed(r1, hybrid).decode_tokens_per_s < 20


def test_partial_offload_lies_between_cpu_and_gpu() -> None:
    f = facts("deepseek-r1:14b")
    speeds = [
        estimate_speed(
            f,
            Placement(
                "llama.cpp", gpu_count=1, gpu_bandwidth_gbps=272, gpu_layers=n, cpu_bandwidth_gbps=51.2
            ),
        ).decode_tokens_per_s
        for n in (0, 24, 48)
    ]
    assert speeds[0] < speeds[1] < speeds[2]


def test_longer_context_is_slower() -> None:
    f, p = (
        facts("deepseek-r1:70b"),
        Placement("llama.cpp", gpu_count=2, gpu_bandwidth_gbps=1008, gpu_layers=80),
    )
    assert estimate_speed(f, p, 32768).decode_tokens_per_s < estimate_speed(f, p, 512).decode_tokens_per_s


def test_calibration_meets_the_issue_targets(shared_dir: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_advisor_speed", BENCH)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.reference_rows(shared_dir / "reference" / "hardware-and-models.md")
    assert len(rows) >= 30 and all(str(r["id"]) in bench.ROWS for r in rows)
    errors = []
    for row in rows:
        model, placement, ctx, experts = bench.ROWS[str(row["id"])]
        predicted = estimate_speed(model, placement, ctx, experts_used=experts).decode_tokens_per_s
        errors.append(abs(predicted - row["tg_tps"]) / row["tg_tps"])
    assert statistics.median(errors) <= 0.20 and max(errors) <= 0.40
