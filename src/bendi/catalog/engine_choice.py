"""Which engine and which weights for one model on one machine, each step with its reason.

vLLM / SGLang with the publisher's checkpoint on data-center GPUs that hold it; llama.cpp with a GGUF quant on
consumer GPUs, Apple and CPUs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from bendi.catalog.catalog import ModelVariant, load_catalog
from bendi.catalog.estimate import ModelFacts
from bendi.catalog.gpus import GpuSpec, find_gpu_spec
from bendi.catalog.planner import Plan, gb, plan_model
from bendi.hardware.profile import HardwareProfile

GpuClass = str  # "cpu" | "apple" | "consumer" | "datacenter"
# The R1 distills' publisher repositories are named like their display names (deepseek-ai/DeepSeek-R1-Distill-
# Qwen-7B); their BF16 safetensors are 2 bytes per parameter.
_PUBLISHER_DISTILL = re.compile(r"^DeepSeek-R1-(Distill-(Qwen|Llama)-[\d.]+B|0528-Qwen3-8B)$")


@dataclass(frozen=True)
class Checkpoint:
    """Weights to serve: a catalog variant's facts, where they come from, and whether the catalog lists them."""

    facts: ModelFacts
    hf_repo: str
    listed: bool = True  # False: derived here (size = parameters x 2 bytes) until the catalog lists it


@dataclass(frozen=True)
class EngineChoice:
    checkpoint: Checkpoint
    engine: str | None  # None: the planner's rule for the checkpoint's format
    reasons: tuple[str, ...]


def gpu_class(hw: HardwareProfile) -> tuple[GpuClass, str]:
    """Step 1: what kind of accelerator this is, and what that means for the engine."""
    if not hw.gpus:
        return "cpu", "No GPU: llama.cpp runs a GGUF quant on the CPU."
    if hw.is_apple_silicon:
        return "apple", (
            f"{hw.gpus[0].name} is an Apple GPU: llama.cpp (Metal) with a GGUF quant; vLLM and SGLang need "
            "NVIDIA GPUs."
        )
    specs = [find_gpu_spec(g.name) for g in hw.gpus]
    many = len(hw.gpus) > 1
    name = f"{len(hw.gpus)}x {hw.gpus[0].name}" if many else hw.gpus[0].name
    if all(s is not None and s.datacenter and s.vendor == "nvidia" for s in specs):
        return "datacenter", (
            f"{name} {'are data-center GPUs' if many else 'is a data-center GPU'}: a server engine (vLLM or "
            "SGLang) with the publisher's weights, where they fit."
        )
    if any(s is not None and s.vendor == "ascend" for s in specs):
        return (
            "consumer",
            f"{name}: bendi plans llama.cpp with a GGUF quant here (MindIE / vllm-ascend are not planned).",
        )
    return "consumer", (
        f"{name} is a consumer GPU: llama.cpp with a GGUF quant (4-5 bits fit 3-4x more model per GB than BF16; "
        "vLLM and SGLang pay off on data-center GPUs serving many users)."
    )


def _gpu_spec(hw: HardwareProfile) -> GpuSpec | None:
    return find_gpu_spec(hw.gpus[0].name) if hw.gpus else None


def checkpoints(variant: ModelVariant) -> list[Checkpoint]:
    """The publisher-format (safetensors) weights of this model: the catalog's, else a derived BF16 one."""
    listed = [
        Checkpoint(ModelFacts.from_variant(v), v.hf_repo)
        for v in load_catalog().variants()
        if v.family == variant.family and v.tag == variant.tag and v.format == "safetensors"
    ]
    if listed or not _PUBLISHER_DISTILL.match(variant.display_name):
        return listed
    facts = ModelFacts(
        f"{variant.family}:{variant.tag}-bf16",
        int(variant.params_b * 2e9),
        variant.params_b,
        variant.architecture,
        "BF16",
        "safetensors",
    )
    return [Checkpoint(facts, f"deepseek-ai/{variant.display_name}", listed=False)]


# Full precision first (the publisher's FP8 where the GPUs have FP8, else BF16), AWQ 4-bit only when those
# do not fit: it costs a little quality, and it is what lets a 70B or the 671B onto GPUs a size down.
PREFERENCE = {"FP8": 0, "BF16": 1, "AWQ": 2}


def _runs_awq(hw: HardwareProfile, spec: GpuSpec | None) -> bool:
    """vLLM's AWQ kernels need compute capability 7.5 (Turing) or newer: the probe's figure, else the table's."""
    try:
        probed = [
            tuple(map(int, g.compute_capability.split(".")[:2])) for g in hw.gpus if g.compute_capability
        ]
    except ValueError:  # a hand-written profile with an odd figure: the table decides
        probed = []
    if probed:
        return all(cc >= (7, 5) for cc in probed)
    return spec is None or spec.awq


def usable_checkpoints(variant: ModelVariant, hw: HardwareProfile) -> tuple[list[Checkpoint], list[str]]:
    """Step 2: the checkpoints these GPUs can run, most preferred first, and a sentence for each one they
    cannot (or for there being none at all)."""
    found = checkpoints(variant)
    if not found:
        return [], [f"{variant.display_name} has no publisher-format checkpoint in the catalog."]
    spec = _gpu_spec(hw)
    gpu = spec.key if spec else hw.gpus[0].name
    usable, skipped = [], []
    for c in found:
        quant = c.facts.quant.upper()
        if quant == "FP8" and not (spec and spec.fp8):
            skipped.append(
                f"The publisher's {variant.display_name} checkpoint is FP8 and the {gpu} has no FP8 support "
                "(that needs Ada, Hopper or Blackwell)."
            )
        elif quant == "AWQ" and not _runs_awq(hw, spec):
            skipped.append(
                f"The {gpu} cannot run the AWQ checkpoint (vLLM's AWQ kernels need Turing or newer)."
            )
        else:
            usable.append(c)
    usable.sort(key=lambda c: (PREFERENCE.get(c.facts.quant.upper(), len(PREFERENCE)), c.facts.weights_bytes))
    return usable, skipped


def _engine_reason(plan: Plan, checkpoint: Checkpoint) -> str:
    why = (
        "SGLang (the engine DeepSeek recommends for its MLA mixture-of-experts models)"
        if plan.engine == "sglang"
        else "vLLM"
    )
    nodes = f" over {plan.nodes} nodes" if plan.nodes > 1 else ""
    derived = " (size derived from the parameter count)" if not checkpoint.listed else ""
    return (
        f"{why} with the {plan.quant} checkpoint {checkpoint.hf_repo}{derived}: {gb(plan.total_bytes)} "
        f"fits with tensor parallel {plan.tensor_parallel}{nodes}."
    )


def plan_serving(
    variant: ModelVariant,
    hw: HardwareProfile,
    context_tokens: int | None = None,
    engine: str | None = None,
    quant_given: bool = False,
) -> Plan:
    """`bendi plan MODEL`: the engine and weights the advisor recommends, planned, with the reasons."""
    own = Checkpoint(ModelFacts.from_variant(variant), variant.hf_repo)

    def finish(checkpoint: Checkpoint, chosen: str | None, reasons: list[str]) -> Plan:
        plan = plan_model(checkpoint.facts, hw, context_tokens, chosen)
        return replace(plan, hf_repo=checkpoint.hf_repo, engine_reasons=tuple(reasons))

    if quant_given:
        kind = "a GGUF quant" if variant.format == "gguf" else "a publisher-format checkpoint"
        runner = engine or ("llama.cpp" if variant.format == "gguf" else "vLLM/SGLang")
        return finish(own, engine, [f"{variant.quant} was asked for: {kind}, so {runner}."])
    if engine == "llama.cpp" or (engine is None and variant.format == "safetensors"):
        return finish(own, engine, [f"--engine {engine}." if engine else f"{variant.quant} checkpoint."])
    cls, why = gpu_class(hw)
    reasons = [why]
    if engine is None and cls != "datacenter":
        return finish(own, None, reasons)
    if engine:
        reasons = [f"--engine {engine}: the publisher's weights rather than a GGUF quant."]
    candidates, skipped = usable_checkpoints(variant, hw) if hw.gpus else ([], [])
    if not candidates:
        fallback = f"{' '.join(skipped)} Using llama.cpp with {variant.quant} instead." if skipped else ""
        return finish(own, engine, [*reasons, fallback] if fallback else reasons)
    passed_over: list[str] = list(skipped)
    for checkpoint in candidates:
        served = plan_model(checkpoint.facts, hw, context_tokens, engine)
        if served.fits:
            return replace(
                served,
                hf_repo=checkpoint.hf_repo,
                engine_reasons=(*reasons, *passed_over, _engine_reason(served, checkpoint)),
            )
        passed_over.append(
            f"The {checkpoint.facts.quant} checkpoint needs {gb(served.total_bytes)}, more than the GPUs hold."
        )
    if engine:  # forced: show why it does not fit
        return replace(served, hf_repo=checkpoint.hf_repo, engine_reasons=(*reasons, *passed_over[:-1]))
    capacity = sum(d.capacity_bytes for d in served.devices)
    spec = _gpu_spec(hw)
    gpu = (spec.key if spec else hw.gpus[0].name).replace(" ", "")
    more = (
        f" Or spread it over more machines: bendi cluster plan {variant.family}:{variant.tag} --nodes 2 "
        f"--gpu {len(hw.gpus)}x{gpu}."
    )
    reasons += passed_over[:-1]
    reasons.append(
        f"The {checkpoint.facts.quant} checkpoint needs {gb(served.total_bytes)} and the GPUs hold "
        f"{gb(capacity)} for it, so llama.cpp with {variant.quant} instead.{more}"
    )
    return finish(own, "llama.cpp", reasons)
