"""Table-driven plans for the named machines, the ranking, the fit check and the reverse question."""

from __future__ import annotations

from pathlib import Path

import pytest

from bendi.catalog.advisor import check_fit, hardware_options, rank_variants
from bendi.catalog.catalog import load_catalog
from bendi.catalog.estimate import ModelFacts
from bendi.catalog.planner import plan_model
from bendi.hardware.profile import HardwareProfile

MACHINES = Path(__file__).parent / "fixtures" / "machines"


def load_machine(name: str) -> HardwareProfile:
    """Machine profiles kept as JSON fixtures named after the machine."""
    return HardwareProfile.from_json((MACHINES / f"{name}.json").read_text())


GB = 10**9
PLAN_KEYS = {
    "model",
    "quant",
    "context_tokens",
    "weights_bytes",
    "kv_cache_bytes",
    "total_bytes",
    "fits",
    "engine",
    "gpu_layers",
    "decode_tokens_per_s",
    "prefill_tokens_per_s",
    "reason",
}


def plan(machine: str, model: str, ctx: int = 4096, engine: str | None = None):  # type: ignore[no-untyped-def]
    return plan_model(
        ModelFacts.from_variant(load_catalog().resolve(model)), load_machine(machine), ctx, engine
    )


# machine, model, fits, engine, placement ("cpu", "gpu" = all layers on GPU, "split", "experts", "tp")
CASES = [
    ("laptop-16gb", "deepseek-r1:7b", True, "llama.cpp", "cpu"),
    ("laptop-16gb", "deepseek-r1:14b", True, "llama.cpp", "cpu"),
    ("laptop-16gb", "deepseek-r1:32b", False, "llama.cpp", "cpu"),
    ("laptop-16gb", "deepseek-r1:671b-ud-iq1_s", False, "llama.cpp", "cpu"),
    ("desktop-32gb-rtx4060", "deepseek-r1:7b", True, "llama.cpp", "gpu"),
    ("desktop-32gb-rtx4060", "deepseek-r1:14b", True, "llama.cpp", "split"),
    ("desktop-32gb-rtx4060", "deepseek-r1:32b", True, "llama.cpp", "split"),
    ("desktop-32gb-rtx4060", "deepseek-r1:70b", False, "llama.cpp", "split"),
    ("workstation-2x4090-128gb", "deepseek-r1:32b-q8_0", True, "llama.cpp", "gpu"),
    ("workstation-2x4090-128gb", "deepseek-r1:70b", True, "llama.cpp", "gpu"),
    ("workstation-2x4090-128gb", "deepseek-r1:671b-ud-iq1_s", True, "llama.cpp", "experts"),
    ("workstation-2x4090-128gb", "deepseek-r1:671b-q4_k_m", False, "llama.cpp", "split"),
    ("server-8xh20", "deepseek-r1:671b-fp8", True, "sglang", "tp"),
    ("server-8xh20", "deepseek-r1:671b-q4_k_m", True, "llama.cpp", "gpu"),
    ("server-8xh20", "deepseek-r1:70b-f16", True, "llama.cpp", "gpu"),
    ("mac-m2-ultra-192gb", "deepseek-r1:70b-q8_0", True, "llama.cpp", "gpu"),
    ("mac-m2-ultra-192gb", "deepseek-r1:671b-ud-iq1_s", True, "llama.cpp", "gpu"),
    ("mac-m2-ultra-192gb", "deepseek-r1:671b-q4_k_m", False, "llama.cpp", "gpu"),
    ("mac-m2-ultra-192gb", "deepseek-r1:671b-fp8", False, "sglang", "tp"),
]


@pytest.mark.parametrize(("machine", "model", "fits", "engine", "placement"), CASES)
def test_named_machine_verdicts(machine: str, model: str, fits: bool, engine: str, placement: str) -> None:
    p = plan(machine, model)
    assert (p.fits, p.engine) == (fits, engine), p.reason
    n_layers = load_catalog().resolve(model).architecture.n_layers
    if placement == "cpu":
        assert p.gpu_layers == 0 and "CPU only" in p.placement
    elif placement == "gpu":
        assert p.gpu_layers == n_layers
    elif placement == "split":
        assert 0 < p.gpu_layers < n_layers
    elif placement == "experts":
        assert p.gpu_layers == n_layers and "routed experts in RAM" in p.placement
    elif placement == "tp":
        assert p.tensor_parallel == 8 or not fits
    if fits:
        assert p.decode_tokens_per_s > 0 and p.prefill_tokens_per_s > 0
        assert p.max_context_tokens >= p.context_tokens
        assert all(d.total_bytes <= d.capacity_bytes for d in p.devices)
    else:
        assert p.decode_tokens_per_s == 0 and "fit" in p.reason or "needs" in p.reason


def test_speed_follows_the_hardware() -> None:
    laptop, desktop, workstation = (
        plan(m, "deepseek-r1:7b").decode_tokens_per_s
        for m in ("laptop-16gb", "desktop-32gb-rtx4060", "workstation-2x4090-128gb")
    )
    assert laptop < desktop < workstation
    # A partly offloaded 14B is faster than CPU-only but slower than the 7B fully on the GPU.
    split = plan("desktop-32gb-rtx4060", "deepseek-r1:14b").decode_tokens_per_s
    assert plan("laptop-16gb", "deepseek-r1:14b").decode_tokens_per_s < split < desktop


def test_longer_context_costs_memory_and_has_a_ceiling() -> None:
    short, long = plan("laptop-16gb", "deepseek-r1:7b", 2048), plan("laptop-16gb", "deepseek-r1:7b", 65536)
    assert long.kv_cache_bytes == pytest.approx(32 * short.kv_cache_bytes, rel=0.01)
    assert short.max_context_tokens == long.max_context_tokens
    assert 16_000 < short.max_context_tokens < 131_072  # 7B's KV is 56 KiB/token; ~8 GB of RAM is left
    assert not plan("laptop-16gb", "deepseek-r1:7b", short.max_context_tokens + 2048).fits


def test_json_keys_are_the_contract() -> None:
    assert set(plan("laptop-16gb", "deepseek-r1:7b").to_json()) >= PLAN_KEYS


def test_ranking_puts_the_biggest_usable_model_first() -> None:
    laptop_best = rank_variants(load_machine("laptop-16gb"))[0][0]
    assert laptop_best.params_b <= 8.2 and laptop_best.decode_tokens_per_s >= 5
    server_best = rank_variants(load_machine("server-8xh20"))[0][0]
    assert server_best.params_b == 671 and server_best.engine == "sglang"
    fitting, rejected = rank_variants(load_machine("desktop-32gb-rtx4060"))
    assert {p.model for p in fitting}.isdisjoint({p.model for p in rejected})
    assert all(not p.fits and p.reason for p in rejected)


def test_check_fit_refuses_with_alternatives_that_fit() -> None:
    laptop = load_machine("laptop-16gb")
    verdict = check_fit(ModelFacts.from_variant(load_catalog().resolve("deepseek-r1:32b")), 4096, laptop)
    assert not verdict.fits and verdict.required_bytes > verdict.available_bytes
    assert "--force" in verdict.reason and verdict.alternatives
    for name in verdict.alternatives:
        assert check_fit(ModelFacts.from_variant(load_catalog().resolve(name)), 4096, laptop).fits
    seven = ModelFacts.from_variant(load_catalog().resolve("deepseek-r1:7b"))
    assert check_fit(seven, 4096, laptop).fits
    assert not check_fit(seven, 4096, laptop, already_loaded_bytes=10 * GB).fits


def test_hardware_options_for_671b() -> None:
    options = hardware_options(load_catalog().resolve("deepseek-r1:671b"))
    by_machine = {p.machine: p for p in options}
    assert by_machine["server: 8x H20 96 GB"].engine == "sglang"
    assert by_machine["server: 8x H20 96 GB"].quant == "FP8"
    two_nodes = by_machine["2 nodes of 8x H100 80 GB"]  # FP8 needs 689 GB: one 8x H100 node is not enough
    assert two_nodes.nodes == 2 and two_nodes.fits and two_nodes.quant == "FP8"
    assert (
        two_nodes.engine == "sglang" and two_nodes.tensor_parallel == 16 and "no Ray" in two_nodes.placement
    )
    assert any("routed experts in RAM" in p.placement for p in options)
    assert "desktop: 32 GB RAM, no GPU" not in by_machine
    assert all(p.fits and p.decode_tokens_per_s > 0 for p in options)


def test_doctor_problems_are_sentences() -> None:
    from dataclasses import replace

    from bendi.catalog.advisor import problems

    old = load_machine("laptop-16gb")
    weak = replace(old, cpu=replace(old.cpu, flags=("avx",)), disk_free_bytes=5 * GB, ram_total_bytes=6 * GB)
    found = problems(weak)
    assert any("AVX2" in p for p in found) and any("disk" in p for p in found)
    assert any("RAM" in p for p in found) and any("No GPU" in p for p in found)
    assert not any("AVX2" in p for p in problems(load_machine("workstation-2x4090-128gb")))
