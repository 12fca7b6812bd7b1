"""Memory estimate: weights + KV cache + compute buffers + runtime overhead, per device.

Modelled on how llama.cpp actually allocates (block-quantised KV rows, the graph's largest
tensors) and on how vLLM/SGLang shard (tensor/pipeline parallel); checked against llama.cpp's own
buffer logs for the bundled model (see benchmarks/bench_advisor_memory.py and docs/advisor.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bendi.catalog.catalog import Architecture, ModelVariant
from bendi.core.errors import UserInputError

MIB = 2**20
GIB = 2**30

# Bytes per element of llama.cpp cache types: block formats carry a 2-byte scale (and min) per 32.
CACHE_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}
DEFAULT_UBATCH_TOKENS = 512
CPU_RUNTIME_OVERHEAD_BYTES = 8 * MIB  # output buffer, graph metadata, scheduler, thread pool
VOCAB_ENTRY_BYTES = 400  # llama.cpp's per-token vocab structures (text, score, merge ranks) in RAM
# Without flash attention the KQ scores and their softmax partly coexist: 1.5x one KQ tensor is resident
# (fitted on the bundled model's RSS, benchmarks/bench_advisor_memory.py; see docs/advisor.md).
RESIDENT_ATTENTION_FACTOR = 1.5
CUDA_CONTEXT_BYTES = 400 * MIB  # CUDA context + cuBLAS workspace, per GPU, not in llama.cpp's logs
VLLM_ACTIVATION_BYTES = 3 * GIB  # activations + CUDA graphs at vLLM's default max_num_batched_tokens
VLLM_MEMORY_UTILIZATION = 0.90  # vLLM's gpu_memory_utilization default


@dataclass(frozen=True)
class ModelFacts:
    """What an estimate needs to know about a model, whether from the catalog or a GGUF header."""

    name: str
    weights_bytes: int
    params_b: float
    architecture: Architecture
    quant: str = "unknown"
    format: str = "gguf"

    @classmethod
    def from_variant(cls, variant: ModelVariant) -> ModelFacts:
        return cls(
            variant.name,
            variant.file_bytes,
            variant.params_b,
            variant.architecture,
            variant.quant,
            variant.format,
        )

    @property
    def bits_per_weight(self) -> float:
        return self.weights_bytes * 8 / (self.params_b * 1e9)

    @property
    def embedding_bytes(self) -> int:
        """One vocab x n_embd matrix (token_embd, and output when untied) at the model's average width."""
        a = self.architecture
        return int(a.vocab_size * a.n_embd * self.bits_per_weight / 8)

    @property
    def output_bytes(self) -> int:
        return 0 if self.architecture.tied_embeddings else self.embedding_bytes

    @property
    def layer_bytes(self) -> int:
        """One repeating block; llama.cpp offloads whole blocks."""
        rest = self.weights_bytes - self.embedding_bytes - self.output_bytes
        return max(rest, 0) // self.architecture.n_layers


def model_facts_from_gguf(
    metadata: Mapping[str, Any],
    file_bytes: int,
    name: str,
    params: int | None = None,
    tied_embeddings: bool = False,
) -> ModelFacts:
    """Facts from a GGUF header's key/values (as any GGUF reader returns them) and the file size.

    The caller reads the header (bendi.store.gguf); the catalog stays below the store layer.
    """
    arch = str(metadata.get("general.architecture", "llama"))

    def num(key: str, default: int | None = None) -> int:
        value = metadata.get(f"{arch}.{key}", default)
        if isinstance(value, list | tuple):  # per-layer arrays (e.g. head_count_kv): the max bounds memory
            value = max(value) if value else default
        if value is None:
            raise UserInputError(f"The GGUF file {name!r} lacks `{arch}.{key}`; cannot estimate its memory.")
        return int(value)

    n_embd, n_head = num("embedding_length"), num("attention.head_count")
    head_dim = n_embd // n_head
    tokens = metadata.get("tokenizer.ggml.tokens")
    vocab = num("vocab_size", len(tokens) if isinstance(tokens, list | tuple) else 32000)
    kv_lora = num("attention.kv_lora_rank", 0)
    architecture = Architecture(
        arch=arch,
        n_layers=num("block_count"),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=num("attention.head_count_kv", n_head),
        head_dim_k=num("attention.key_length", head_dim),
        head_dim_v=num("attention.value_length", head_dim),
        n_ff=num("feed_forward_length", 4 * n_embd),
        vocab_size=vocab,
        max_context_tokens=num("context_length", 4096),
        tied_embeddings=tied_embeddings,
        kv_lora_rank=kv_lora,
        qk_rope_head_dim=num("rope.dimension_count", 64) if kv_lora else 0,
        n_expert=num("expert_count", 0),
        n_expert_used=num("expert_used_count", 0),
        n_expert_shared=num("expert_shared_count", 0),
        n_dense_layers=num("leading_dense_block_count", 0),
        n_ff_expert=num("expert_feed_forward_length", 0),
    )
    if params is None:  # no tensor count given: assume ~4.8 bits per weight (Q4_K_M)
        params = int(file_bytes * 8 / 4.8)
    return ModelFacts(name, file_bytes, params / 1e9, architecture)


def cache_type_bytes(cache_type: str) -> float:
    try:
        return CACHE_TYPE_BYTES[cache_type.lower()]
    except KeyError:
        raise UserInputError(
            f"Unknown KV cache type {cache_type!r}; use one of {', '.join(CACHE_TYPE_BYTES)}."
        ) from None


def kv_bytes_per_token(
    arch: Architecture, cache_type_k: str = "f16", cache_type_v: str = "f16", mla_latent: bool = True
) -> float:
    """KV cache bytes per context token over all layers.

    MLA models cache one latent row (kv_lora_rank + rope dims) per layer and no separate V when the
    engine supports it (llama.cpp since PR #19067, ik_llama -mla 2, vLLM, SGLang); otherwise the
    decompressed per-head K and V (old GGUFs, MLX), ~70x more.
    """
    bk, bv = cache_type_bytes(cache_type_k), cache_type_bytes(cache_type_v)
    if arch.is_mla and mla_latent:
        return arch.n_layers * (arch.kv_lora_rank + arch.qk_rope_head_dim) * bk
    return arch.n_layers * arch.n_head_kv * (arch.head_dim_k * bk + arch.head_dim_v * bv)


def compute_buffer_bytes(
    arch: Architecture, context_tokens: int, ubatch_tokens: int = DEFAULT_UBATCH_TOKENS
) -> int:
    """llama.cpp's graph buffer: the larger of the logits path and the attention-scores path.

    4 B x ubatch x max(n_embd + vocab, 1 + 2 n_embd + ctx (1 + n_head)); matches llama.cpp's log for
    SmolLM2 to 2% (98.25/99.38/166.38 MiB at 512/2048/8192) and 671B MLA at 32K to 3% (8470 MiB).
    """
    ub = min(ubatch_tokens, context_tokens)
    logits = arch.n_embd + arch.vocab_size
    attention = 1 + 2 * arch.n_embd + context_tokens * (1 + arch.n_head)
    return 4 * ub * max(logits, attention) + 1 * MIB


def resident_compute_bytes(
    arch: Architecture, context_tokens: int, ubatch_tokens: int = DEFAULT_UBATCH_TOKENS
) -> int:
    """What of the CPU graph buffer is actually touched (RAM is committed lazily; VRAM is not).

    A full context with logits for one token per sequence: the attention scores dominate; the
    ubatch x vocab logits rows the allocator reserves are never written.
    """
    ub = min(ubatch_tokens, context_tokens)
    attention = 1 + 2 * arch.n_embd + RESIDENT_ATTENTION_FACTOR * context_tokens * (1 + arch.n_head)
    return int(4 * ub * attention)


def cpu_runtime_bytes(arch: Architecture) -> int:
    return CPU_RUNTIME_OVERHEAD_BYTES + arch.vocab_size * VOCAB_ENTRY_BYTES


@dataclass(frozen=True)
class DeviceUse:
    device: str  # "cpu", "gpu0", "gpu1", ...
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    overhead_bytes: int
    capacity_bytes: int = 0  # what the device offers; 0 = not checked

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.compute_bytes + self.overhead_bytes

    @property
    def fits(self) -> bool:
        return self.capacity_bytes == 0 or self.total_bytes <= self.capacity_bytes


@dataclass(frozen=True)
class MemoryEstimate:
    context_tokens: int
    devices: tuple[DeviceUse, ...]

    @property
    def weights_bytes(self) -> int:
        return sum(d.weights_bytes for d in self.devices)

    @property
    def kv_cache_bytes(self) -> int:
        return sum(d.kv_cache_bytes for d in self.devices)

    @property
    def compute_bytes(self) -> int:
        return sum(d.compute_bytes for d in self.devices)

    @property
    def overhead_bytes(self) -> int:
        return sum(d.overhead_bytes for d in self.devices)

    @property
    def total_bytes(self) -> int:
        return sum(d.total_bytes for d in self.devices)

    @property
    def fits(self) -> bool:
        return all(d.fits for d in self.devices)


def llamacpp_memory(
    facts: ModelFacts,
    context_tokens: int,
    gpu_layers: int = 0,
    gpu_capacity_bytes: Sequence[int] = (),
    ram_capacity_bytes: int = 0,
    cache_type_k: str = "f16",
    cache_type_v: str = "f16",
    experts_on_cpu: bool = False,
) -> MemoryEstimate:
    """llama.cpp placement: the first `gpu_layers` blocks split over GPUs by capacity (its default
    --tensor-split), the rest and token_embd on the CPU; `experts_on_cpu` is `-ot exps=CPU`."""
    a = facts.architecture
    n_gpus = len(gpu_capacity_bytes)
    gpu_layers = max(0, min(gpu_layers, a.n_layers)) if n_gpus else 0
    kv_layer = kv_bytes_per_token(a, cache_type_k, cache_type_v) * context_tokens / a.n_layers
    compute = compute_buffer_bytes(a, context_tokens)
    expert_share = _routed_expert_share(facts) if experts_on_cpu else 0.0
    layer = facts.layer_bytes
    cpu_layers = a.n_layers - gpu_layers
    full_offload = gpu_layers == a.n_layers
    devices = []
    if n_gpus:
        total_cap = sum(gpu_capacity_bytes) or 1
        assigned = 0
        for i, cap in enumerate(gpu_capacity_bytes):
            share = gpu_layers - assigned if i == n_gpus - 1 else round(gpu_layers * cap / total_cap)
            assigned += share
            weights = int(share * layer * (1 - expert_share))
            if full_offload and i == n_gpus - 1:
                weights += facts.output_bytes  # llama.cpp puts the output matrix with the last block
            devices.append(
                DeviceUse(
                    f"gpu{i}",
                    weights,
                    int(share * kv_layer),
                    compute if gpu_layers else 0,
                    CUDA_CONTEXT_BYTES,
                    cap,
                )
            )
    cpu_weights = facts.embedding_bytes + cpu_layers * layer + int(gpu_layers * layer * expert_share)
    if not full_offload:
        cpu_weights += facts.output_bytes
    # RAM is committed when touched, so the CPU side counts the resident graph, not the reservation.
    cpu_compute = (
        resident_compute_bytes(a, context_tokens)
        if gpu_layers == 0
        else 4 * DEFAULT_UBATCH_TOKENS * a.n_embd * 8
    )
    devices.insert(
        0,
        DeviceUse(
            "cpu",
            cpu_weights,
            int(cpu_layers * kv_layer),
            cpu_compute,
            cpu_runtime_bytes(a),
            ram_capacity_bytes,
        ),
    )
    return MemoryEstimate(context_tokens, tuple(devices))


def _routed_expert_share(facts: ModelFacts) -> float:
    """Fraction of a block's bytes that are routed experts (the part `-ot exps=CPU` keeps in RAM)."""
    a = facts.architecture
    if not a.is_moe:
        return 0.0
    expert_params = (a.n_layers - a.n_dense_layers) * a.n_expert * 3 * a.n_embd * a.n_ff_expert
    other_params = facts.params_b * 1e9 - expert_params
    other_bytes = other_params * non_expert_bits(facts) / 8
    layer_total = facts.weights_bytes - facts.embedding_bytes - facts.output_bytes
    return min(max(1 - other_bytes / max(layer_total, 1), 0.0), 1.0)


def non_expert_bits(facts: ModelFacts) -> float:
    """Unsloth's dynamic quants keep attention and shared experts at ~4-6 bits; others are uniform."""
    return 5.5 if facts.quant.upper().startswith("UD-") else facts.bits_per_weight


def sharded_memory(
    facts: ModelFacts,
    context_tokens: int,
    tensor_parallel: int,
    pipeline_parallel: int,
    gpu_capacity_bytes: int,
    concurrent_sequences: int = 1,
) -> MemoryEstimate:
    """vLLM / SGLang: weights split over tp x pp GPUs; the MLA latent cache is replicated per TP rank."""
    a = facts.architecture
    shards = tensor_parallel * pipeline_parallel
    kv_total = kv_bytes_per_token(a, "f16", "f16") * context_tokens * concurrent_sequences
    kv_per_gpu = kv_total / pipeline_parallel / (1 if a.is_mla else min(tensor_parallel, a.n_head_kv))
    usable = int(gpu_capacity_bytes * VLLM_MEMORY_UTILIZATION)
    devices = tuple(
        DeviceUse(
            f"gpu{i}",
            facts.weights_bytes // shards,
            int(kv_per_gpu),
            VLLM_ACTIVATION_BYTES,
            CUDA_CONTEXT_BYTES,
            usable,
        )
        for i in range(shards)
    )
    return MemoryEstimate(context_tokens, devices)
