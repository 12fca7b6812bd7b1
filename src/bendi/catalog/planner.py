"""The planner: pick engine and placement for a model on a machine, with memory, speed and a reason."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bendi.catalog.estimate import (
    DeviceUse,
    MemoryEstimate,
    ModelFacts,
    llamacpp_memory,
    sharded_memory,
)
from bendi.catalog.gpus import DEFAULT_RAM_BANDWIDTH_GBPS, find_gpu_spec
from bendi.catalog.numa import choose_policy
from bendi.catalog.plans import Plan as Plan  # re-exported: callers import Plan from here
from bendi.catalog.speed import ENGINE_PROFILES, Placement, estimate_speed
from bendi.core.errors import UserInputError
from bendi.hardware.profile import HardwareProfile

GB = 10**9
ENGINES = ("llama.cpp", "vllm", "sglang")
DEFAULT_CONTEXT_TOKENS = 4096
MIN_CONTEXT_TOKENS = 256
UNKNOWN_GPU_BANDWIDTH_GBPS = 300.0  # a GPU missing from the spec table: assume a mid-range card
UNKNOWN_GPU_TFLOPS = 30.0
CPU_TFLOPS_PER_CORE = {"avx512f": 0.20, "avx2": 0.10}  # int8/fp32 dot throughput llama.cpp reaches


def gb(n: float) -> str:
    return f"{n / GB:.1f} GB"


@dataclass(frozen=True)
class _Machine:
    """The numbers the planner needs, derived once from a HardwareProfile."""

    ram_bytes: int
    ram_bandwidth_gbps: float
    cpu_tflops: float
    gpu_free: tuple[int, ...]
    gpu_name: str
    gpu_bandwidth_gbps: float
    gpu_tflops: float
    gpu_efficiency: float
    gpu_fp8: bool
    gpu_awq: bool
    unified: bool
    nodes: int
    sockets: int


def _machine(hw: HardwareProfile, already_loaded_bytes: int) -> _Machine:
    gpus = hw.gpus
    spec = find_gpu_spec(gpus[0].name) if gpus else None
    unified = bool(gpus) and gpus[0].unified_memory
    flag_tflops = max((v for k, v in CPU_TFLOPS_PER_CORE.items() if k in hw.cpu.flags), default=0.02)
    ram = hw.ram_available_bytes
    gpu_free = tuple(g.memory_free_bytes for g in gpus)
    if already_loaded_bytes:  # other models already resident: take it from where this model would go
        if gpus and not unified:
            per = already_loaded_bytes // len(gpus)
            gpu_free = tuple(max(f - per, 0) for f in gpu_free)
        else:
            ram -= already_loaded_bytes
            gpu_free = tuple(max(f - already_loaded_bytes, 0) for f in gpu_free)
    return _Machine(
        ram_bytes=max(ram, 0),
        ram_bandwidth_gbps=hw.ram_bandwidth_gbps
        or (spec.bandwidth_gbps if unified and spec else DEFAULT_RAM_BANDWIDTH_GBPS),
        cpu_tflops=hw.cpu.physical_cores * flag_tflops,
        gpu_free=gpu_free,
        gpu_name=gpus[0].name if gpus else "",
        gpu_bandwidth_gbps=spec.bandwidth_gbps if spec else UNKNOWN_GPU_BANDWIDTH_GBPS,
        gpu_tflops=spec.fp16_tflops if spec else UNKNOWN_GPU_TFLOPS,
        gpu_efficiency=spec.bandwidth_efficiency if spec else 1.0,
        gpu_fp8=spec.fp8 if spec else False,
        gpu_awq=spec.awq if spec else True,
        unified=unified,
        nodes=hw.nodes,
        sockets=1 if unified else max(hw.numa_nodes, 1),
    )


@dataclass(frozen=True)
class _Layout:
    memory: MemoryEstimate
    placement: Placement  # what the speed model sees
    gpu_layers: int
    describe: str
    nodes: int = 1
    launch_parallel: tuple[int, int] = (1, 1)  # (tensor, pipeline) as the engine is started


def _llamacpp_placement(facts: ModelFacts, m: _Machine, ctx: int) -> _Layout:
    a = facts.architecture
    base = Placement(
        engine="llama.cpp",
        cpu_bandwidth_gbps=m.ram_bandwidth_gbps,
        cpu_tflops=m.cpu_tflops,
        gpu_bandwidth_gbps=m.gpu_bandwidth_gbps,
        gpu_tflops=m.gpu_tflops,
        gpu_bandwidth_efficiency=m.gpu_efficiency,
        cpu_sockets=m.sockets,
    )
    if m.unified:  # Apple: one pool, capped by Metal's working-set limit and by free RAM
        mem = llamacpp_memory(facts, ctx)
        cap = min(m.gpu_free[0], m.ram_bytes)
        merged = DeviceUse(
            "unified", mem.weights_bytes, mem.kv_cache_bytes, mem.compute_bytes, mem.overhead_bytes, cap
        )
        return _Layout(
            MemoryEstimate(ctx, (merged,)),
            replace(base, gpu_count=1, unified_memory=True),
            a.n_layers,
            f"all {a.n_layers} layers on the {m.gpu_name} GPU (unified memory)",
        )
    if not m.gpu_free:
        mem = llamacpp_memory(facts, ctx, ram_capacity_bytes=m.ram_bytes)
        return _Layout(mem, base, 0, "CPU only")
    n_gpus = len(m.gpu_free)
    where = f"{n_gpus}x {m.gpu_name}" if n_gpus > 1 else m.gpu_name

    def memory(layers: int, experts_on_cpu: bool = False) -> MemoryEstimate:
        return llamacpp_memory(facts, ctx, layers, m.gpu_free, m.ram_bytes, experts_on_cpu=experts_on_cpu)

    full = memory(a.n_layers)
    if full.fits:
        return _Layout(
            full,
            replace(base, gpu_count=n_gpus, gpu_layers=a.n_layers),
            a.n_layers,
            f"all {a.n_layers} layers on {where}",
        )
    if a.is_moe:
        hybrid = memory(a.n_layers, experts_on_cpu=True)
        if hybrid.fits:
            return _Layout(
                hybrid,
                replace(base, gpu_count=n_gpus, gpu_layers=a.n_layers, experts_on_cpu=True),
                a.n_layers,
                f"attention and shared experts on {where}, routed experts in RAM (-ot exps=CPU)",
            )
    low, high = 0, a.n_layers - 1  # the most layers whose GPU share fits
    while low < high:
        mid = (low + high + 1) // 2
        if all(d.fits for d in memory(mid).devices if d.device != "cpu"):
            low = mid
        else:
            high = mid - 1
    mem = memory(low)
    cpu = mem.devices[0]
    spill = max(cpu.total_bytes - cpu.capacity_bytes, 0) / max(cpu.weights_bytes, 1)
    placement = replace(base, gpu_count=n_gpus if low else 0, gpu_layers=low, spill_fraction=min(spill, 1.0))
    text = (
        f"{low} of {a.n_layers} layers on {where}, the rest on the CPU"
        if low
        else "CPU only (no layer fits the GPU)"
    )
    return _Layout(mem, placement, low, text)


def _llamacpp_layout(facts: ModelFacts, m: _Machine, ctx: int) -> _Layout:
    """The llama.cpp placement, then where its CPU-side weights live on a multi-socket machine."""
    layout = _llamacpp_placement(facts, m, ctx)
    cpu = layout.memory.devices[0]
    if m.sockets <= 1 or m.unified or cpu.weights_bytes < GB:
        return layout
    profile = ENGINE_PROFILES[layout.placement.engine]
    policy, _ = choose_policy(m.sockets, profile.numa_replicas, cpu.total_bytes, m.ram_bytes / m.sockets)
    placement = replace(layout.placement, numa_policy=policy)
    if policy == "pinned":  # one socket's cores for whatever the CPU computes
        placement = replace(placement, cpu_tflops=m.cpu_tflops / m.sockets)
    where = "NUMA node 0 only" if policy == "pinned" else f"all {m.sockets} NUMA nodes"
    return replace(layout, placement=placement, describe=f"{layout.describe}; CPU side on {where}")


def _tensor_parallel(facts: ModelFacts, gpus_per_node: int) -> int:
    tp = gpus_per_node
    while tp > 1 and facts.architecture.n_head % tp:
        tp -= 1
    return max(tp, 1)


def _sharded_layout(facts: ModelFacts, m: _Machine, ctx: int, engine: str) -> _Layout:
    """TP inside a node; more nodes until the shards fit: vLLM as pipeline stages over Ray, SGLang as one
    tensor-parallel group over all nodes (its own --nnodes/--node-rank/--dist-init-addr, no Ray)."""
    gpus_per_node = len(m.gpu_free)
    tp = _tensor_parallel(facts, gpus_per_node)
    pp = 1
    mem = sharded_memory(facts, ctx, tp, pp, min(m.gpu_free) if m.gpu_free else 0)
    while not mem.fits and pp < m.nodes:  # add nodes until the shards fit
        pp += 1
        mem = sharded_memory(facts, ctx, tp, pp, min(m.gpu_free))
    # Single-stream speed: both engines read the same bytes per node; a second node is costed as a
    # pipeline stage (no single-stream multi-node measurement exists to calibrate cross-node TP).
    placement = Placement(
        engine=engine,
        gpu_count=tp * pp,
        gpu_bandwidth_gbps=m.gpu_bandwidth_gbps,
        gpu_tflops=m.gpu_tflops,
        gpu_layers=facts.architecture.n_layers,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        gpu_bandwidth_efficiency=m.gpu_efficiency,
    )
    text = f"tensor parallel {tp} over {tp}x {m.gpu_name}"
    launch = (tp, pp)
    if pp > 1 and engine == "sglang" and facts.architecture.n_head % (tp * pp) == 0:
        launch = (tp * pp, 1)
        text = (
            f"tensor parallel {tp * pp} over {pp} nodes of {tp}x {m.gpu_name} "
            "(SGLang's own multi-node launch: --nnodes/--node-rank/--dist-init-addr, no Ray)"
        )
    elif pp > 1:
        how = "vLLM on Ray" if engine == "vllm" else "SGLang's own --nnodes launch, no Ray"
        text += f", pipeline parallel {pp} over {pp} nodes ({how})"
    return _Layout(mem, placement, facts.architecture.n_layers, text, pp, launch)


def choose_engine(facts: ModelFacts, hw: HardwareProfile) -> str:
    """GGUF runs in llama.cpp; checkpoints (FP8/BF16 safetensors) need vLLM or, for MLA MoE, SGLang;
    AWQ checkpoints vLLM, whose AWQ mixture-of-experts kernels are the ones the R1 AWQ repositories name."""
    if facts.format == "safetensors":
        return "sglang" if facts.architecture.is_mla and facts.quant.upper() != "AWQ" else "vllm"
    return "llama.cpp"


def plan_model(
    facts: ModelFacts,
    hw: HardwareProfile,
    context_tokens: int | None = None,
    engine: str | None = None,
    already_loaded_bytes: int = 0,
) -> Plan:
    """Place `facts` on `hw` at `context_tokens`; never raises for a model that does not fit."""
    a = facts.architecture
    ctx = min(context_tokens or DEFAULT_CONTEXT_TOKENS, a.max_context_tokens)
    if ctx < 1:
        raise UserInputError("--ctx must be a positive number of tokens.")
    engine = engine or choose_engine(facts, hw)
    if engine not in ENGINES:
        raise UserInputError(f"Unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    m = _machine(hw, already_loaded_bytes)
    layout, refusal = _layout(facts, m, ctx, engine)
    mem = layout.memory
    speed = estimate_speed(facts, layout.placement, context_tokens=min(ctx, 1024))
    fits = mem.fits and refusal is None
    max_ctx = _max_context(facts, m, engine) if refusal is None else 0
    if refusal:
        reason = refusal
    elif fits:
        reason = f"Fits: {gb(mem.total_bytes)} with {layout.describe}; about {speed.decode_tokens_per_s:.1f} tok/s."
        if layout.placement.spill_fraction:
            reason += " Part of the model is paged from disk."
    else:
        reason = _why_not(mem, m)
        if max_ctx:
            reason += f" It does fit with a context of up to {max_ctx:,} tokens (--ctx {max_ctx})."
    if context_tokens and context_tokens > a.max_context_tokens:
        reason = f"Context capped at the model's maximum of {a.max_context_tokens:,} tokens. " + reason
    return Plan(
        model=facts.name,
        quant=facts.quant,
        params_b=facts.params_b,
        context_tokens=ctx,
        weights_bytes=mem.weights_bytes,
        kv_cache_bytes=mem.kv_cache_bytes,
        total_bytes=mem.total_bytes,
        fits=fits,
        engine=engine,
        gpu_layers=layout.gpu_layers,
        decode_tokens_per_s=speed.decode_tokens_per_s if fits else 0.0,
        prefill_tokens_per_s=speed.prefill_tokens_per_s if fits else 0.0,
        reason=reason,
        placement=layout.describe,
        max_context_tokens=max_ctx,
        tensor_parallel=layout.launch_parallel[0],
        pipeline_parallel=layout.launch_parallel[1],
        nodes=layout.nodes,
        machine=hw.label,
        devices=mem.devices,
        format=facts.format,
        experts_on_cpu=layout.placement.experts_on_cpu,
        sockets=m.sockets,
        numa=speed.cpu_path.policy if speed.cpu_path else "single",
        speed_terms=speed.terms if fits else (),
    )


def placement_for(
    facts: ModelFacts, hw: HardwareProfile, context_tokens: int | None = None, engine: str = "llama.cpp"
) -> Placement:
    """The placement plan_model would give `engine`; the calibration tests swap in the measured engine."""
    ctx = min(context_tokens or DEFAULT_CONTEXT_TOKENS, facts.architecture.max_context_tokens)
    return _layout(facts, _machine(hw, 0), ctx, engine)[0].placement


def _layout(facts: ModelFacts, m: _Machine, ctx: int, engine: str) -> tuple[_Layout, str | None]:
    if engine == "llama.cpp":
        layout = _llamacpp_layout(facts, m, ctx)
        if facts.format != "gguf":
            return (
                layout,
                f"llama.cpp needs a GGUF file; {facts.name} is a {facts.format} checkpoint (use vllm or sglang).",
            )
        return layout, None
    layout = _sharded_layout(facts, m, ctx, engine)
    if not m.gpu_free or m.unified:
        return layout, f"{engine} needs NVIDIA (or Ascend) GPUs; this machine has none. Use llama.cpp."
    if facts.format != "safetensors":
        return layout, (
            f"bendi runs {engine} with a Hugging Face-format checkpoint; {facts.name} is a {facts.format} "
            "file (use llama.cpp, or the model name without a quant to get the publisher's checkpoint)."
        )
    if facts.quant.upper() == "AWQ" and not m.gpu_awq:
        return layout, (
            f"The {m.gpu_name} cannot run AWQ checkpoints (vLLM's AWQ kernels need Turing or newer GPUs); "
            "use a GGUF quant with llama.cpp, or the BF16 checkpoint."
        )
    if facts.quant.upper() == "FP8" and not m.gpu_fp8:
        return layout, (
            f"The {m.gpu_name} has no FP8 support (that needs Ada, Hopper or Blackwell GPUs), so it cannot "
            f"serve the FP8 checkpoint {facts.name}; use a GGUF quant with llama.cpp, or FP8-capable GPUs."
        )
    return layout, None


def _why_not(mem: MemoryEstimate, m: _Machine) -> str:
    over = [d for d in mem.devices if not d.fits]
    worst = over[0] if over else mem.devices[0]
    where = (
        "RAM"
        if worst.device == "cpu"
        else ("unified memory" if worst.device == "unified" else f"VRAM on {worst.device}")
    )
    total_cap = m.ram_bytes + (sum(m.gpu_free) if not m.unified else 0)
    return (
        f"Does not fit: needs {gb(mem.total_bytes)} in all ({gb(worst.total_bytes)} in {where}, which has "
        f"{gb(worst.capacity_bytes)}); the machine offers {gb(total_cap)}. Choose a smaller quant or model, "
        "a shorter context, or more memory."
    )


def _max_context(facts: ModelFacts, m: _Machine, engine: str) -> int:
    low, high = MIN_CONTEXT_TOKENS, facts.architecture.max_context_tokens
    if not _layout(facts, m, low, engine)[0].memory.fits:
        return 0
    while high - low > 256:
        mid = (low + high) // 2
        if _layout(facts, m, mid, engine)[0].memory.fits:
            low = mid
        else:
            high = mid
    return high if _layout(facts, m, high, engine)[0].memory.fits else low
