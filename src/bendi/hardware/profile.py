"""The values that describe a machine (CPU, RAM, disk, GPUs), frozen and JSON round-trippable."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CpuInfo:
    model: str
    physical_cores: int
    logical_cores: int
    flags: tuple[str, ...] = ()  # SIMD flags that matter to llama.cpp: avx, avx2, avx512f, fma, neon, amx...
    architecture: str = "x86_64"


@dataclass(frozen=True)
class GpuInfo:
    name: str
    vendor: str  # "nvidia" | "amd" | "apple" | "ascend" | "other"
    memory_total_bytes: int
    memory_free_bytes: int
    driver_version: str | None = None
    compute_capability: str | None = None
    unified_memory: bool = False  # Apple: the GPU shares system RAM


@dataclass(frozen=True)
class HardwareProfile:
    """One machine. `ram_bandwidth_gbps` is None when unknown (the advisor then assumes a default)."""

    cpu: CpuInfo
    ram_total_bytes: int
    ram_available_bytes: int
    gpus: tuple[GpuInfo, ...] = ()
    disk_free_bytes: int | None = None
    os: str = "linux"
    ram_bandwidth_gbps: float | None = None
    nodes: int = 1  # identical machines joined by a network (Ray); 1 for a single box
    numa_nodes: int = 1  # memory domains with CPUs (usually sockets): /sys/devices/system/node/has_cpu
    label: str = field(default="this machine")

    @property
    def vram_total_bytes(self) -> int:
        return sum(g.memory_total_bytes for g in self.gpus if not g.unified_memory)

    @property
    def is_apple_silicon(self) -> bool:
        return any(g.unified_memory for g in self.gpus)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardwareProfile:
        cpu_data = dict(data["cpu"])
        cpu_data["flags"] = tuple(cpu_data.get("flags", ()))
        gpus = tuple(GpuInfo(**g) for g in data.get("gpus", ()))
        rest = {k: v for k, v in data.items() if k not in ("cpu", "gpus")}
        return cls(cpu=CpuInfo(**cpu_data), gpus=gpus, **rest)

    @classmethod
    def from_json(cls, text: str) -> HardwareProfile:
        return cls.from_dict(json.loads(text))
