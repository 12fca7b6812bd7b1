"""Which catalog model drafts for a planned llama.cpp model (speculative decoding), whether both fit,
and whether it is expected to pay: the "Draft model" part of `bendi plan`.

The rule: the smallest catalog model of the target's tokenizer with at most a quarter of its
parameters, as a GGUF (Q4_K_M, else the smallest file). Its weights, KV cache and buffers for the
plan's context must fit in what the plan leaves free, placed as bendi's engine places a draft (the
target's GPU layer count, engines/llamacpp/draft.py). vLLM and SGLang have speculative methods of
their own, so their plans get one line and no draft.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from typing import Any

from bendi.catalog.catalog import Catalog, ModelVariant, load_catalog
from bendi.catalog.draft_speedup import SpeedupRange, speedup_range
from bendi.catalog.estimate import CUDA_CONTEXT_BYTES, ModelFacts, llamacpp_memory
from bendi.catalog.plans import Plan
from bendi.core.errors import ModelNotFoundError
from bendi.core.settings import Settings

GB = 10**9
# A draft a quarter of the target's size or more costs too much of each step to pay (draft_speedup.py:
# the draft's k decodes cost k x c, c ~ the size ratio).
MAX_DRAFT_SHARE = 0.25
PREFERRED_QUANT = "Q4_K_M"


def pick_draft(target: ModelVariant, catalog: Catalog) -> ModelVariant | None:
    """The smallest same-tokenizer model at most a quarter of the target's parameters, as a GGUF."""
    if target.tokenizer is None:
        return None
    partners = [
        v
        for v in catalog.variants()
        if v.tokenizer == target.tokenizer
        and v.format == "gguf"
        and v.params_b <= target.params_b * MAX_DRAFT_SHARE
    ]
    if not partners:
        return None
    smallest = min(partners, key=lambda v: (v.params_b, v.family, v.tag))
    files = [v for v in partners if (v.family, v.tag) == (smallest.family, smallest.tag)]
    preferred = [v for v in files if v.quant == PREFERRED_QUANT]
    return preferred[0] if preferred else min(files, key=lambda v: v.file_bytes)


@dataclass(frozen=True)
class DeviceNeed:
    device: str  # as in the plan: "cpu", "gpu0", ..., "unified"
    needed_bytes: int
    free_bytes: int | None  # what the plan leaves there; None: not checked

    @property
    def fits(self) -> bool:
        return self.free_bytes is None or self.needed_bytes <= self.free_bytes

    @property
    def where(self) -> str:
        if self.device == "cpu":
            return "RAM"
        return "unified memory" if self.device == "unified" else f"GPU memory ({self.device})"


@dataclass(frozen=True)
class DraftMemory:
    weights_bytes: int
    kv_cache_bytes: int
    devices: tuple[DeviceNeed, ...]

    @property
    def extra_bytes(self) -> int:
        return sum(d.needed_bytes for d in self.devices)

    @property
    def fits(self) -> bool:
        return all(d.fits for d in self.devices)

    @property
    def main(self) -> DeviceNeed:
        """Where it does not fit, else where most of it goes."""
        short = [d for d in self.devices if not d.fits]
        return short[0] if short else max(self.devices, key=lambda d: d.needed_bytes)


def draft_memory(draft: ModelVariant, plan: Plan) -> DraftMemory:
    """The draft beside the planned target: same context (one sequence, as the plan), the target's GPU
    layer count, against what each of the plan's devices has left."""
    facts = ModelFacts.from_variant(draft)
    ctx = min(plan.context_tokens, draft.architecture.max_context_tokens)
    free = {d.device: d.capacity_bytes - d.total_bytes if d.capacity_bytes else None for d in plan.devices}
    gpus = [d.device for d in plan.devices if d.device.startswith("gpu")]
    if gpus:
        layers = min(plan.gpu_layers, draft.architecture.n_layers)
        # llama.cpp splits the draft's layers by the GPUs' free memory when it loads, after the target.
        room = tuple(max(free[g] or 0, 0) for g in gpus)
        estimate = llamacpp_memory(facts, ctx, layers, room)
        names = [d.device for d in estimate.devices]
    else:  # CPU only, or Apple's one pool (the planner counts it the same way)
        estimate = llamacpp_memory(facts, ctx)
        names = [plan.devices[0].device]
    needs = tuple(
        # One process: the draft shares the target's CUDA context.
        DeviceNeed(
            name, d.total_bytes - (CUDA_CONTEXT_BYTES if name.startswith("gpu") else 0), free.get(name)
        )
        for name, d in zip(names, estimate.devices, strict=True)
    )
    return DraftMemory(
        estimate.weights_bytes, estimate.kv_cache_bytes, tuple(n for n in needs if n.needed_bytes)
    )


@dataclass(frozen=True)
class DraftAdvice:
    recommended: bool
    reason: str  # one plain sentence
    draft: ModelVariant | None = None
    draft_name: str = ""  # what --draft takes, e.g. deepseek-r1:1.5b
    memory: DraftMemory | None = None
    speedup: SpeedupRange | None = None
    command: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """`bendi plan --json`'s "draft_model" (a contract, like Plan.to_json)."""
        memory = self.memory
        return {
            "recommended": self.recommended,
            "reason": self.reason,
            "draft": self.draft_name or None,
            "draft_variant": self.draft.name if self.draft else None,
            "quant": self.draft.quant if self.draft else None,
            "memory": {
                "extra_bytes": memory.extra_bytes,
                "weights_bytes": memory.weights_bytes,
                "kv_cache_bytes": memory.kv_cache_bytes,
                "fits": memory.fits,
                "devices": [
                    {"device": d.device, "needed_bytes": d.needed_bytes, "free_bytes": d.free_bytes}
                    for d in memory.devices
                ],
            }
            if memory
            else None,
            "speedup": self.speedup.to_json() if self.speedup else None,
            "command": list(self.command),
            "command_line": shlex.join(self.command) if self.command else None,
        }


def _short_name(variant: ModelVariant, catalog: Catalog) -> str:
    """`deepseek-r1:1.5b` when the variant is the model's default quant, else its full name."""
    short = f"{variant.family}:{variant.tag}"
    return short if catalog.resolve(short) == variant else variant.name


def _gb(n: int) -> str:
    return f"{n / GB:.1f} GB"


def advise_draft(plan: Plan, catalog: Catalog | None = None) -> DraftAdvice | None:
    """The draft for `plan`'s model, or why there is none; None for a plan that does not fit."""
    if not plan.fits:
        return None
    if plan.engine != "llama.cpp":
        engine = "SGLang" if plan.engine == "sglang" else "vLLM"
        return DraftAdvice(
            False,
            f"{engine} has speculative decoding of its own (set it in engine_args); "
            "bendi's --draft is for llama.cpp.",
        )
    catalog = catalog or load_catalog()
    try:
        target = catalog.resolve(plan.model)
    except ModelNotFoundError:
        return None
    draft = pick_draft(target, catalog)
    if draft is None:
        return DraftAdvice(
            False,
            f"The catalog has no model with the same tokenizer (the same vocabulary of word pieces) and at "
            f"most a quarter of {target.display_name}'s size to draft for it.",
        )
    name, target_name = _short_name(draft, catalog), _short_name(target, catalog)
    memory = draft_memory(draft, plan)
    # One token's prefill time / one decode: above 1/(k+1) the target cannot verify in one decode's time.
    batch_cost = plan.decode_tokens_per_s / plan.prefill_tokens_per_s if plan.prefill_tokens_per_s else 0.0
    speed = speedup_range(draft.file_bytes / target.file_bytes, batch_cost)
    found = DraftAdvice(False, "", draft, name, memory, speed)
    if not memory.fits:
        short = memory.main
        return replace(
            found,
            reason=f"The draft model {name} would need {_gb(short.needed_bytes)} more {short.where} but only "
            f"{_gb(max(short.free_bytes or 0, 0))} is left there after {target_name}, so it does not fit beside "
            "it (a shorter --ctx, the context window, or more memory makes room).",
        )
    if not speed.pays:
        return replace(
            found,
            reason=f"The draft model {name} is not expected to pay for {target_name}: at 50% accepted guesses it "
            f"would run at {speed.best_at_low:.2f}x the plain speed at best, slower than without it.",
        )
    return replace(
        found,
        recommended=True,
        reason=f"{draft.display_name} ({name}, {draft.quant}) guesses a few tokens (word pieces) ahead and "
        f"{target.display_name} checks all the guesses in one pass: the answers stay exactly the same, "
        "they come sooner.",
        command=(
            *proposal_setting(speed.proposed_tokens),
            "bendi",
            "serve",
            "--model",
            target_name,
            "--draft",
            name,
        ),
    )


def proposal_setting(proposed_tokens: int) -> tuple[str, ...]:
    """The environment that makes bendi propose at most the advised number of tokens a step (its
    engine lengthens proposals that hold up to `speculative_tokens`, 8 unless set)."""
    default = Settings.model_fields["speculative_tokens"].default
    return () if proposed_tokens >= default else (f"BENDI_SPECULATIVE_TOKENS={proposed_tokens}",)
