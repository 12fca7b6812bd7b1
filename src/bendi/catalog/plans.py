"""The Plan record: one model on one machine, how it runs, how fast and why; `to_json()` is a contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bendi.catalog.estimate import DeviceUse
from bendi.catalog.speed import SpeedTerm


@dataclass(frozen=True)
class Plan:
    """One model on one machine. `to_json()` keys are a contract (`bendi plan --json`)."""

    model: str
    quant: str
    params_b: float
    context_tokens: int
    weights_bytes: int
    kv_cache_bytes: int
    total_bytes: int
    fits: bool
    engine: str
    gpu_layers: int
    decode_tokens_per_s: float
    prefill_tokens_per_s: float
    reason: str
    placement: str
    max_context_tokens: int = 0
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    nodes: int = 1
    machine: str = ""
    devices: tuple[DeviceUse, ...] = field(default=())
    format: str = "gguf"
    hf_repo: str = ""
    experts_on_cpu: bool = False
    sockets: int = 1  # NUMA nodes of the machine
    numa: str = "single"  # "single" | "pinned" | "spanning" | "replicated" (catalog/numa.py)
    speed_terms: tuple[SpeedTerm, ...] = ()
    engine_reasons: tuple[str, ...] = ()  # why this engine and these weights (catalog/engine_choice.py)

    @property
    def dominant_term(self) -> SpeedTerm | None:
        return max(self.speed_terms, key=lambda t: t.seconds, default=None)

    def speed_explanation(self) -> str:
        """One sentence naming the assumption that limits decode speed most, with its share of the time."""
        top = self.dominant_term
        total = sum(t.seconds for t in self.speed_terms)
        if top is None or total <= 0:
            return ""
        return (
            f"Decode is limited by {top.name} ({top.seconds / total:.0%} of each token's time): {top.detail}."
        )

    def to_json(self) -> dict[str, Any]:
        total = sum(t.seconds for t in self.speed_terms)
        return {
            "model": self.model,
            "quant": self.quant,
            "format": self.format,
            "hf_repo": self.hf_repo,
            "params_b": self.params_b,
            "context_tokens": self.context_tokens,
            "max_context_tokens": self.max_context_tokens,
            "weights_bytes": self.weights_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "total_bytes": self.total_bytes,
            "fits": self.fits,
            "engine": self.engine,
            "engine_reasons": list(self.engine_reasons),
            "gpu_layers": self.gpu_layers,
            "experts_on_cpu": self.experts_on_cpu,
            "tensor_parallel": self.tensor_parallel,
            "pipeline_parallel": self.pipeline_parallel,
            "nodes": self.nodes,
            "sockets": self.sockets,
            "numa": self.numa,
            "decode_tokens_per_s": round(self.decode_tokens_per_s, 2),
            "prefill_tokens_per_s": round(self.prefill_tokens_per_s, 1),
            "speed_breakdown": [
                {
                    "term": t.name,
                    "ms_per_token": round(t.seconds * 1e3, 3),
                    "share": round(t.seconds / total, 3) if total else 0.0,
                    "detail": t.detail,
                }
                for t in self.speed_terms
            ],
            "limited_by": self.dominant_term.name if self.dominant_term else None,
            "placement": self.placement,
            "reason": self.reason,
            "machine": self.machine,
            "devices": [
                {
                    "device": d.device,
                    "total_bytes": d.total_bytes,
                    "capacity_bytes": d.capacity_bytes,
                    "weights_bytes": d.weights_bytes,
                    "kv_cache_bytes": d.kv_cache_bytes,
                }
                for d in self.devices
            ],
        }
