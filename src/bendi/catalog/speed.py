"""Speed estimate: decode is memory-bandwidth bound (bytes read per token), prefill compute bound.

Efficiency factors and per-layer costs per engine are calibrated on the measured rows of
../shared/reference (benchmarks/bench_advisor_speed.py prints the fit; docs/advisor.md states it).
"""

from __future__ import annotations

from dataclasses import dataclass

from bendi.catalog.estimate import ModelFacts, _routed_expert_share, kv_bytes_per_token
from bendi.catalog.numa import CpuMemoryPath, NumaPolicy, cpu_memory_path

GB = 1e9
SPILL_LOCALITY_EXPONENT = 2.0
MOE_PREFILL_EFFICIENCY = 0.3  # relative to dense (reference row 12: 16x3090, pp512 239 tok/s)
PCIE_GBPS = 25.0  # host-to-GPU copy rate llama.cpp gets when prefill streams CPU-resident layers
ACTIVATION_BYTES = 4  # f32 hidden state crossing PCIe between GPU and CPU parts of a layer


@dataclass(frozen=True)
class EngineProfile:
    """How close an engine gets to the hardware roofline, and its fixed cost per layer per token."""

    name: str
    gpu_efficiency: float  # fraction of GPU memory bandwidth reached while decoding
    cpu_efficiency: float  # fraction of theoretical RAM bandwidth
    apple_efficiency: float  # fraction of Apple unified-memory bandwidth
    layer_overhead_s: float  # kernel launches, sync: per dense layer per token (CUDA / CPU)
    apple_layer_overhead_s: float  # the same on Metal
    moe_layer_overhead_s: float  # routing + expert gather: per MoE layer per token
    gpu_hop_s: float  # per boundary between GPUs in a layer split / pipeline
    compute_efficiency: float  # fraction of FP16 TFLOPS reached in prefill (CUDA)
    apple_compute_efficiency: float = 0.65  # Metal reaches more of its (lower) peak
    mla_latent_cache: bool = True
    numa_replicas: bool = False  # keeps a copy of the CPU-side weights per NUMA node (numa.py)


ENGINE_PROFILES: dict[str, EngineProfile] = {
    p.name: p
    for p in (
        EngineProfile("llama.cpp", 0.90, 0.50, 0.80, 70e-6, 150e-6, 0.45e-3, 0.3e-3, 0.40),
        # Builds before CUDA graphs (May 2024) paid ~3x more per layer; the reference's A100/H100 and
        # early Metal rows were measured on those.
        EngineProfile("llama.cpp-2023", 0.90, 0.50, 0.80, 220e-6, 220e-6, 0.45e-3, 0.3e-3, 0.25),
        EngineProfile("ik_llama.cpp", 0.90, 0.60, 0.80, 70e-6, 150e-6, 0.45e-3, 0.3e-3, 0.40),
        EngineProfile(
            "ktransformers", 0.90, 0.41, 0.80, 70e-6, 150e-6, 0.10e-3, 0.3e-3, 0.40, numa_replicas=True
        ),
        EngineProfile("mlx", 0.85, 0.50, 0.80, 70e-6, 150e-6, 0.30e-3, 0.0, 0.55, mla_latent_cache=False),
        EngineProfile("vllm", 0.80, 0.50, 0.80, 150e-6, 150e-6, 0.20e-3, 0.5e-3, 0.55),
        EngineProfile("sglang", 0.80, 0.50, 0.80, 150e-6, 150e-6, 0.17e-3, 0.5e-3, 0.55),
    )
}


@dataclass(frozen=True)
class Placement:
    """Where a model's weights live and which memory each token's reads hit."""

    engine: str
    gpu_count: int = 0
    gpu_bandwidth_gbps: float = 0.0  # per GPU
    gpu_tflops: float = 0.0  # per GPU, FP16 dense
    gpu_layers: int = 0  # llama.cpp n_gpu_layers (layer split across gpu_count GPUs)
    experts_on_cpu: bool = False  # llama.cpp -ot exps=CPU / KTransformers hybrid
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    unified_memory: bool = False  # Apple: "GPU" bandwidth is the unified memory
    gpu_bandwidth_efficiency: float = 1.0  # chip-specific: some GPUs cannot saturate their bus (M1 Max)
    cpu_bandwidth_gbps: float = 51.2
    cpu_tflops: float = 1.0
    cpu_sockets: int = 1  # NUMA nodes; cpu_bandwidth_gbps is all of them together
    numa_policy: NumaPolicy | None = None  # None: the engine's default (numa.py)
    spill_fraction: float = (
        0.0  # share of the CPU-resident weights that is not in RAM (mmap pages it from disk)
    )
    disk_bandwidth_gbps: float = 3.0


@dataclass(frozen=True)
class SpeedTerm:
    """One part of the time per decoded token, and what it rests on."""

    name: str  # "gpu memory", "ram", "disk", "pcie", "fixed costs", "gpu hops"
    seconds: float
    detail: str


@dataclass(frozen=True)
class SpeedEstimate:
    decode_tokens_per_s: float
    prefill_tokens_per_s: float
    gpu_bytes_per_token: float
    cpu_bytes_per_token: float
    terms: tuple[SpeedTerm, ...] = ()
    cpu_path: CpuMemoryPath | None = None

    @property
    def dominant(self) -> SpeedTerm | None:
        """The term that takes the largest share of a token's time: the assumption that matters most."""
        return max(self.terms, key=lambda t: t.seconds, default=None)


def active_weight_bytes(facts: ModelFacts) -> tuple[float, float]:
    """(non-expert, routed-expert) bytes read per decoded token; token_embd is a row lookup, not read."""
    a = facts.architecture
    layers = facts.weights_bytes - facts.embedding_bytes - facts.output_bytes
    share = _routed_expert_share(facts)
    routed = layers * share * (a.n_expert_used / a.n_expert if a.is_moe else 0.0)
    return layers * (1 - share) + facts.output_bytes, routed


def resolve_cpu_path(placement: Placement) -> CpuMemoryPath:
    """The RAM path for this placement: its NUMA policy, or the engine's default for its socket count."""
    profile = ENGINE_PROFILES[placement.engine]
    policy: NumaPolicy = placement.numa_policy or (
        "single" if placement.cpu_sockets <= 1 else ("replicated" if profile.numa_replicas else "spanning")
    )
    return cpu_memory_path(
        placement.cpu_bandwidth_gbps, placement.cpu_sockets, profile.cpu_efficiency, policy
    )


def _split_bytes(
    facts: ModelFacts, placement: Placement, dense: float, routed: float, kv: float
) -> tuple[float, float, int]:
    """(GPU bytes, CPU bytes, activation crossings over PCIe) per decoded token."""
    a = facts.architecture
    total = dense + routed + kv
    if placement.unified_memory:
        return total, 0.0, 0
    if placement.gpu_count == 0:
        return 0.0, total, 0
    if placement.experts_on_cpu:  # each MoE layer: hidden state to the CPU experts and back
        return dense + kv, routed, 2 * (a.n_layers - a.n_dense_layers)
    if placement.tensor_parallel > 1:
        return total, 0.0, 0
    frac = min(placement.gpu_layers, a.n_layers) / a.n_layers
    return total * frac, total * (1 - frac), 2 if 0 < frac < 1 else 0


def _decode_terms(
    facts: ModelFacts, placement: Placement, context_tokens: int, experts_used: int | None
) -> tuple[tuple[SpeedTerm, ...], float, float, CpuMemoryPath]:
    a = facts.architecture
    p = ENGINE_PROFILES[placement.engine]
    dense_bytes, routed_bytes = active_weight_bytes(facts)
    used = a.n_expert_used
    if experts_used is not None and a.is_moe:
        routed_bytes *= experts_used / a.n_expert_used
        used = experts_used
    kv_bytes = kv_bytes_per_token(a, mla_latent=p.mla_latent_cache) * context_tokens
    gpu_bytes, cpu_bytes, crossings = _split_bytes(facts, placement, dense_bytes, routed_bytes, kv_bytes)
    path = resolve_cpu_path(placement)
    terms: list[SpeedTerm] = []
    if gpu_bytes:
        if placement.unified_memory:
            eff = p.apple_efficiency * placement.gpu_bandwidth_efficiency
            bw, where = placement.gpu_bandwidth_gbps * eff, "unified memory"
        else:
            tp = max(placement.tensor_parallel, 1)
            eff = p.gpu_efficiency * placement.gpu_bandwidth_efficiency
            bw = placement.gpu_bandwidth_gbps * eff * tp
            where = f"GPU memory ({tp} GPUs in tensor parallel)" if tp > 1 else "GPU memory"
        terms.append(
            SpeedTerm(
                "gpu memory",
                gpu_bytes / (bw * GB),
                f"{gpu_bytes / GB:.2f} GB per token from {where} at {bw:.0f} GB/s "
                f"({placement.gpu_bandwidth_gbps:.0f} GB/s x {eff:.2f})",
            )
        )
    if cpu_bytes:
        what = (
            f"routed experts ({used} of {a.n_expert} per layer in {a.n_layers - a.n_dense_layers} MoE layers)"
            if placement.experts_on_cpu
            else "the CPU's share of the weights and KV cache"
        )
        terms.append(
            SpeedTerm(
                "ram",
                cpu_bytes / (path.effective_gbps * GB),
                f"{cpu_bytes / GB:.2f} GB per token of {what} from RAM at {path.effective_gbps:.0f} GB/s: "
                f"{path.reason}",
            )
        )
        if placement.spill_fraction:
            # Expert use is skewed, so the page cache keeps hot experts and misses fall faster than the
            # spilled share: miss rate = spill^2 (fitted on reference rows 9 and 11, both [S]).
            miss_rate = placement.spill_fraction**SPILL_LOCALITY_EXPONENT
            terms.append(
                SpeedTerm(
                    "disk",
                    cpu_bytes * miss_rate / (placement.disk_bandwidth_gbps * GB),
                    f"{placement.spill_fraction:.0%} of the CPU-side weights are not in RAM; "
                    f"{miss_rate:.0%} of reads page from disk at {placement.disk_bandwidth_gbps:.0f} GB/s",
                )
            )
    if crossings:
        pcie_bytes = crossings * a.n_embd * ACTIVATION_BYTES
        terms.append(
            SpeedTerm(
                "pcie",
                pcie_bytes / (PCIE_GBPS * GB),
                f"{crossings} activation transfers ({pcie_bytes / 1e6:.1f} MB) per token at {PCIE_GBPS:.0f} GB/s; "
                "no weights cross PCIe while decoding",
            )
        )
    moe_layers = a.n_layers - a.n_dense_layers if a.is_moe else 0
    dense_overhead_s = p.apple_layer_overhead_s if placement.unified_memory else p.layer_overhead_s
    fixed = (a.n_layers - moe_layers) * dense_overhead_s + moe_layers * p.moe_layer_overhead_s
    terms.append(
        SpeedTerm(
            "fixed costs",
            fixed,
            f"kernel launches and routing: {dense_overhead_s * 1e6:.0f} us per dense layer, "
            f"{p.moe_layer_overhead_s * 1e6:.0f} us per MoE layer ({placement.engine})",
        )
    )
    hops = max(placement.gpu_count // max(placement.tensor_parallel, 1) - 1, 0)
    if hops:
        terms.append(SpeedTerm("gpu hops", hops * p.gpu_hop_s, f"{hops} GPU-to-GPU handovers per token"))
    return tuple(terms), gpu_bytes, cpu_bytes, path


def estimate_speed(
    facts: ModelFacts, placement: Placement, context_tokens: int = 512, experts_used: int | None = None
) -> SpeedEstimate:
    """Single-stream decode and prefill tok/s with `context_tokens` already in the KV cache."""
    a = facts.architecture
    p = ENGINE_PROFILES[placement.engine]
    terms, gpu_bytes, cpu_bytes, path = _decode_terms(facts, placement, context_tokens, experts_used)
    decode = 1.0 / sum(t.seconds for t in terms)

    active_params = (a.active_params_b or facts.params_b) * 1e9
    # Weights, plus attention over half the context on average (QK^T and AV for every head).
    flops_per_token = (
        2 * active_params + 2 * a.n_layers * a.n_head * (a.head_dim_k + a.head_dim_v) * context_tokens / 2
    )
    if a.is_moe:  # each expert sees ~ubatch x 8/256 tokens: small matmuls, far from peak
        flops_per_token /= MOE_PREFILL_EFFICIENCY
    if placement.gpu_count or placement.unified_memory:
        # A llama.cpp layer split runs the GPUs one after another; tensor parallel runs them together.
        parallel_gpus = (
            max(placement.tensor_parallel, 1) * max(placement.pipeline_parallel, 1)
            if placement.tensor_parallel > 1
            else 1
        )
        efficiency = p.apple_compute_efficiency if placement.unified_memory else p.compute_efficiency
        tflops = max(placement.gpu_tflops, 1.0) * parallel_gpus * efficiency
        prefill_s = flops_per_token / (tflops * 1e12)
        if cpu_bytes and not placement.unified_memory:
            # CPU-resident weights are streamed to the GPU once per 512-token batch, or run on the CPU.
            prefill_s += (
                min(
                    cpu_bytes * a.n_expert / max(a.n_expert_used, 1) if a.is_moe else cpu_bytes,
                    facts.weights_bytes,
                )
                / (PCIE_GBPS * GB)
                / 512
            )
    else:
        prefill_s = flops_per_token / (max(placement.cpu_tflops, 0.05) * 1e12 * 0.5)
    return SpeedEstimate(decode, 1.0 / prefill_s, gpu_bytes, cpu_bytes, terms, path if cpu_bytes else None)
