"""The advisor: will a model fit (check_fit), which catalog models suit a machine, and which machines suit a model."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bendi.catalog.catalog import ModelVariant, load_catalog
from bendi.catalog.estimate import ModelFacts
from bendi.catalog.gpus import find_gpu_spec
from bendi.catalog.machines import describe_machine
from bendi.catalog.planner import Plan, gb, plan_model
from bendi.hardware.profile import HardwareProfile

LOW_DISK_BYTES = 20 * 10**9  # a 7B Q4 model plus a knowledge base index
LOW_RAM_BYTES = 8 * 10**9
USABLE_DECODE_TOKENS_PER_S = 5.0  # below this a reasoning model's long thoughts take minutes
MAX_ALTERNATIVES = 4


@dataclass(frozen=True)
class FitVerdict:
    fits: bool
    required_bytes: int
    available_bytes: int
    reason: str
    alternatives: tuple[str, ...] = ()


def _available_bytes(plan: Plan) -> int:
    return sum(d.capacity_bytes for d in plan.devices)


def check_fit(
    model: ModelFacts, context_tokens: int, hardware: HardwareProfile, already_loaded_bytes: int = 0
) -> FitVerdict:
    """Would llama.cpp load `model` with `context_tokens` on `hardware` next to what is already loaded?"""
    plan = plan_model(model, hardware, context_tokens, "llama.cpp", already_loaded_bytes)
    if plan.fits:
        return FitVerdict(True, plan.total_bytes, _available_bytes(plan), plan.reason)
    alternatives = tuple(
        p.model
        for p in fitting_variants(hardware, context_tokens, already_loaded_bytes)
        if p.model != model.name
    )[:MAX_ALTERNATIVES]
    hint = f" Models that fit: {', '.join(alternatives)}." if alternatives else ""
    reason = (
        f"{model.name} needs about {gb(plan.total_bytes)} at {plan.context_tokens} tokens of context, "
        f"but only {gb(_available_bytes(plan))} is free. {plan.reason}{hint} "
        "Pass --force to load it anyway."
    )
    return FitVerdict(False, plan.total_bytes, _available_bytes(plan), reason, alternatives)


def quality_tier(plan: Plan) -> int:
    """Coarse output quality from the quant's nominal bits (Q3_K_M -> 3, UD-IQ1_S -> 1); 8+ is lossless."""
    match = re.search(r"(\d+)", plan.quant)
    if match is None:
        return min(int(plan.weights_bytes * 8 / (plan.params_b * 1e9)), 8)
    return min(int(match.group(1)), 8)


def _rank_key(plan: Plan) -> tuple[int, float, int, float]:
    """Usable speed first, then the biggest model, then the better quant tier, then the faster plan."""
    usable = plan.decode_tokens_per_s >= USABLE_DECODE_TOKENS_PER_S
    return (0 if usable else 1, -plan.params_b, -quality_tier(plan), -plan.decode_tokens_per_s)


def rank_variants(
    hardware: HardwareProfile,
    context_tokens: int | None = None,
    engine: str | None = None,
    variants: list[ModelVariant] | None = None,
) -> tuple[list[Plan], list[Plan]]:
    """(ranked plans that fit: biggest model at a usable speed first, then slow ones; rejected plans)."""
    plans = [
        plan_model(ModelFacts.from_variant(v), hardware, context_tokens, engine)
        for v in (variants if variants is not None else load_catalog().variants())
    ]
    fitting = sorted((p for p in plans if p.fits), key=_rank_key)
    rejected = sorted((p for p in plans if not p.fits), key=lambda p: (p.params_b, p.weights_bytes))
    return fitting, rejected


def fitting_variants(
    hardware: HardwareProfile, context_tokens: int, already_loaded_bytes: int = 0
) -> list[Plan]:
    """llama.cpp-runnable catalog variants that fit, best first (for "variants that would fit" hints)."""
    plans = [
        plan_model(ModelFacts.from_variant(v), hardware, context_tokens, "llama.cpp", already_loaded_bytes)
        for v in load_catalog().variants()
        if v.format == "gguf"
    ]
    return sorted((p for p in plans if p.fits), key=_rank_key)


# Candidate machines for "what hardware runs this model?", cheapest first.
HARDWARE_OPTIONS: tuple[dict[str, object], ...] = (
    {"label": "desktop: 32 GB RAM, no GPU", "ram_gb": 32, "ram_bandwidth_gbps": 89.6},
    {
        "label": "desktop: RTX 4060 8 GB + 32 GB RAM",
        "gpu": "RTX 4060",
        "ram_gb": 32,
        "ram_bandwidth_gbps": 89.6,
    },
    {
        "label": "desktop: RTX 4090 24 GB + 64 GB RAM",
        "gpu": "RTX 4090",
        "ram_gb": 64,
        "ram_bandwidth_gbps": 89.6,
    },
    {
        "label": "workstation: 2x RTX 4090 + 128 GB RAM",
        "gpu": "RTX 4090x2",
        "ram_gb": 128,
        "ram_bandwidth_gbps": 89.6,
    },
    {"label": "Mac Studio M2 Ultra 192 GB", "gpu": "M2 Ultra", "ram_gb": 192},
    {
        "label": "server: RTX 4090 24 GB + 512 GB RAM (12-channel DDR5)",
        "gpu": "RTX 4090",
        "ram_gb": 512,
        "ram_bandwidth_gbps": 460.8,
    },
    {
        "label": "server: 2-socket Xeon (2x 8-ch DDR5-4800) 1 TB + RTX 4090",
        "gpu": "RTX 4090",
        "ram_gb": 1024,
        "ram_bandwidth_gbps": 614.4,
        "sockets": 2,
    },
    {"label": "Mac Studio M3 Ultra 512 GB", "gpu": "M3 Ultra", "ram_gb": 512},
    {
        "label": "server: 2x H100 80 GB + 64 GB RAM",
        "gpu": "H100x2",
        "ram_gb": 64,
        "ram_bandwidth_gbps": 307.2,
    },
    {"label": "server: 8x H20 96 GB", "gpu": "H20x8", "ram_gb": 1024, "ram_bandwidth_gbps": 307.2},
    {"label": "server: 8x H200 141 GB", "gpu": "H200x8", "ram_gb": 2048, "ram_bandwidth_gbps": 614.4},
    {
        "label": "2 nodes of 8x H100 80 GB",
        "gpu": "H100x8",
        "ram_gb": 1024,
        "ram_bandwidth_gbps": 614.4,
        "nodes": 2,
        "sockets": 2,
    },
)


def hardware_options(variant: ModelVariant, context_tokens: int | None = None) -> list[Plan]:
    """For each candidate machine, the best quant of this model that runs there (usable speed first)."""
    catalog = load_catalog()
    siblings = [v for v in catalog.variants() if v.family == variant.family and v.tag == variant.tag]
    options = []
    for spec in HARDWARE_OPTIONS:
        machine = describe_machine(**spec)  # type: ignore[arg-type]
        fitting, _ = rank_variants(machine, context_tokens, None, siblings)
        if machine.nodes > 1:  # offer several nodes only where one node is not enough
            fitting = [p for p in fitting if p.nodes > 1]
        if fitting:
            options.append(fitting[0])
    return options


def problems(profile: HardwareProfile) -> list[str]:
    """What will hurt on this machine (`bendi doctor`), each a sentence saying what to do."""
    found = []
    if profile.cpu.architecture in ("x86_64", "AMD64") and "avx2" not in profile.cpu.flags:
        found.append("This CPU lacks AVX2, so llama.cpp runs 3-5x slower; prefer a GPU or a newer CPU.")
    if profile.disk_free_bytes is not None and profile.disk_free_bytes < LOW_DISK_BYTES:
        found.append(
            f"Only {profile.disk_free_bytes / 1e9:.1f} GB of disk is free; models need 1-400 GB. "
            "Free space or set BENDI_HOME to a larger disk."
        )
    if profile.ram_total_bytes < LOW_RAM_BYTES:
        found.append(
            f"Only {profile.ram_total_bytes / 1e9:.1f} GB of RAM: only the 1.5B model will run well."
        )
    if not profile.gpus:
        found.append(
            "No GPU found (nvidia-smi absent or no Apple GPU): models run on the CPU, which is "
            "fine up to ~8B parameters."
        )
    for gpu in profile.gpus:
        if find_gpu_spec(gpu.name) is None:
            found.append(
                f"GPU {gpu.name!r} is not in bendi's spec table; speed estimates assume a mid-range card."
            )
    return found
