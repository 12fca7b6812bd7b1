"""Accelerator and RAM spec table (memory, bandwidth, FP16 compute) and parsing of what users type.

Bandwidth and memory are from ../shared/reference section E where it has them ([V]/[S]); the FP16
tensor figures are vendor datasheet numbers (dense, FP16 accumulate for GeForce) recalled, [M].
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bendi.core.errors import UserInputError

GB = 10**9


@dataclass(frozen=True)
class GpuSpec:
    key: str  # canonical short name, e.g. "RTX 4090"
    vendor: str  # "nvidia" | "apple" | "ascend" | "amd"
    memory_gb: float  # as marketed; for GPUs that "24 GB" is really GiB (nvidia-smi: 24564 MiB). Apple: GB
    bandwidth_gbps: float  # GB/s
    fp16_tflops: float  # dense
    aliases: tuple[str, ...] = ()
    unified_memory: bool = False
    datacenter: bool = False
    nvlink: bool = False  # fast GPU-to-GPU link (tensor parallel scales well)
    bandwidth_efficiency: float = 1.0  # measured shortfall of the chip itself (see docs/advisor.md)
    fp8: bool = False  # FP8 tensor cores (compute capability >= 8.9: Ada, Hopper, Blackwell)
    awq: bool = True  # vLLM's AWQ (4-bit) kernels: compute capability >= 7.5, so not Volta

    @property
    def memory_bytes(self) -> int:
        # Discrete GPUs are marketed in binary units (an 80 GB H100 has 81559 MiB); Apple RAM in decimal.
        return int(self.memory_gb * (GB if self.unified_memory else 2**30))


GPU_SPECS: tuple[GpuSpec, ...] = (
    # NVIDIA GeForce (consumer)
    GpuSpec("RTX 3060", "nvidia", 12, 360, 51, ("3060", "3060 12gb")),
    GpuSpec("RTX 3060 8GB", "nvidia", 8, 240, 51, ("3060 8gb",)),
    GpuSpec("RTX 3070", "nvidia", 8, 448, 81, ("3070",)),
    GpuSpec("RTX 3080", "nvidia", 10, 760, 119, ("3080",)),
    GpuSpec("RTX 3090", "nvidia", 24, 936, 142, ("3090",)),
    GpuSpec("RTX 3090 Ti", "nvidia", 24, 1008, 160, ("3090ti",)),
    GpuSpec("RTX 4060", "nvidia", 8, 272, 60, ("4060",), fp8=True),
    GpuSpec("RTX 4060 Ti", "nvidia", 16, 288, 88, ("4060ti", "4060 ti 16gb"), fp8=True),
    GpuSpec("RTX 4070", "nvidia", 12, 504, 117, ("4070",), fp8=True),
    GpuSpec("RTX 4070 Ti", "nvidia", 12, 504, 160, ("4070ti",), fp8=True),
    GpuSpec("RTX 4080", "nvidia", 16, 717, 195, ("4080", "4080 super"), fp8=True),
    GpuSpec("RTX 4090", "nvidia", 24, 1008, 330, ("4090",), fp8=True),
    GpuSpec("RTX 4090D", "nvidia", 24, 1008, 294, ("4090d",), fp8=True),
    GpuSpec("RTX 5090", "nvidia", 32, 1792, 419, ("5090",), fp8=True),
    # NVIDIA data centre
    GpuSpec("V100", "nvidia", 32, 900, 125, ("v10032gb",), datacenter=True, nvlink=True, awq=False),
    GpuSpec("A100 40GB", "nvidia", 40, 1555, 312, ("a10040gb", "a10040g"), datacenter=True, nvlink=True),
    GpuSpec(
        "A100 80GB",
        "nvidia",
        80,
        2039,
        312,
        ("a100", "a10080gb", "a10080g", "a100sxm"),
        datacenter=True,
        nvlink=True,
    ),
    GpuSpec("A800", "nvidia", 80, 2039, 312, ("a80080gb",), datacenter=True, nvlink=True),
    GpuSpec("L20", "nvidia", 48, 864, 119, (), datacenter=True, fp8=True),
    GpuSpec("L40S", "nvidia", 48, 864, 362, (), datacenter=True, fp8=True),
    GpuSpec("H100 PCIe", "nvidia", 80, 2000, 756, ("h100pcie80gb",), datacenter=True, fp8=True),
    GpuSpec(
        "H100",
        "nvidia",
        80,
        3350,
        989,
        ("h100sxm", "h10080gb", "h100sxm580gb"),
        datacenter=True,
        nvlink=True,
        fp8=True,
    ),
    GpuSpec("H800", "nvidia", 80, 3350, 989, (), datacenter=True, nvlink=True, fp8=True),
    GpuSpec("H20", "nvidia", 96, 4000, 148, ("h2096gb",), datacenter=True, nvlink=True, fp8=True),
    GpuSpec("H20 141GB", "nvidia", 141, 4800, 148, ("h20141gb",), datacenter=True, nvlink=True, fp8=True),
    GpuSpec(
        "H200", "nvidia", 141, 4800, 989, ("h200sxm", "h200141gb"), datacenter=True, nvlink=True, fp8=True
    ),
    GpuSpec(
        "B200", "nvidia", 183, 8000, 2250, ("b200183gb", "b200180gb"), datacenter=True, nvlink=True, fp8=True
    ),
    # Chinese accelerators: Ascend 910B bandwidth is disputed (1.6 vs 2.0 TB/s); we take the lower.
    GpuSpec(
        "Ascend 910B",
        "ascend",
        64,
        1600,
        320,
        ("910b", "ascend910b", "huawei910b"),
        datacenter=True,
        nvlink=True,
    ),
    # AMD consumer (Vulkan / ROCm in llama.cpp)
    GpuSpec("RX 5500 XT", "amd", 4, 224, 10, ("5500xt", "rx5500xt4gb")),
    GpuSpec("RX 6500 XT", "amd", 4, 144, 18, ("6500xt",)),
    GpuSpec("RX 7900 XTX", "amd", 24, 960, 123, ("7900xtx",)),
    # Apple silicon: unified memory, so memory_gb is the largest configuration.
    GpuSpec("M1", "apple", 16, 68, 2.3, ("applem1",), unified_memory=True),
    # The M1 Max GPU reaches ~60% of its 400 GB/s bus (reference row 34: 70B Q4_K_M at 4.34 tok/s).
    GpuSpec("M1 Max", "apple", 64, 400, 10.4, ("applem1max",), unified_memory=True, bandwidth_efficiency=0.6),
    GpuSpec("M1 Ultra", "apple", 128, 800, 21, ("applem1ultra",), unified_memory=True),
    GpuSpec("M2 Max", "apple", 96, 400, 13.6, ("applem2max",), unified_memory=True),
    GpuSpec("M2 Ultra", "apple", 192, 800, 27.2, ("applem2ultra",), unified_memory=True),
    GpuSpec("M3 Max", "apple", 128, 400, 16.4, ("applem3max",), unified_memory=True),
    GpuSpec("M3 Ultra", "apple", 512, 819, 28.4, ("applem3ultra",), unified_memory=True),
    GpuSpec("M4 Pro", "apple", 64, 273, 9.2, ("applem4pro",), unified_memory=True),
    GpuSpec("M4 Max", "apple", 128, 546, 17, ("applem4max",), unified_memory=True),
)

# RAM: GB/s per channel = 8 bytes x MT/s. Desktops have 2 channels, workstations 4-8, servers 8-12.
RAM_TYPES_MTPS: dict[str, int] = {
    "DDR4-2400": 2400,
    "DDR4-2666": 2666,
    "DDR4-3200": 3200,
    "DDR4-3600": 3600,
    "DDR5-4800": 4800,
    "DDR5-5200": 5200,
    "DDR5-5600": 5600,
    "DDR5-6000": 6000,
    "DDR5-6400": 6400,
    "LPDDR5-6400": 6400,
    "LPDDR5X-8533": 8533,
}
DEFAULT_RAM_BANDWIDTH_GBPS = 51.2  # dual-channel DDR4-3200, the commonest desktop when nothing is known


def ram_bandwidth_gbps(ram_type: str, channels: int = 2) -> float:
    """Theoretical bandwidth of `channels` x 64-bit channels of `ram_type` (e.g. DDR5-5600 x2 = 89.6)."""
    key = ram_type.upper()
    if key not in RAM_TYPES_MTPS:
        raise UserInputError(f"Unknown RAM type {ram_type!r}; known: {', '.join(RAM_TYPES_MTPS)}.")
    return RAM_TYPES_MTPS[key] * 8 * channels / 1000


def _normal(name: str) -> str:
    text = name.lower()
    for noise in ("nvidia", "geforce", "huawei ", "apple ", "tesla", "graphics", "-sxm5", "sxm4"):
        text = text.replace(noise, "")
    return re.sub(r"[\s\-_]+", "", text).replace("rtx", "").replace("radeon", "")


_INDEX: dict[str, GpuSpec] = {}
for _spec in GPU_SPECS:
    for _alias in (_spec.key, *_spec.aliases):
        _INDEX.setdefault(_normal(_alias), _spec)

_COUNT_SUFFIX = re.compile(r"^(?P<name>.+?)\s*[x×*]\s*(?P<count>\d{1,3})$", re.IGNORECASE)
_COUNT_PREFIX = re.compile(r"^(?P<count>\d{1,3})\s*[x×*]\s*(?P<name>.+)$", re.IGNORECASE)


def find_gpu_spec(name: str) -> GpuSpec | None:
    """The spec for a product name as nvidia-smi or a user spells it; None when unknown."""
    key = _normal(name)
    if key in _INDEX:
        return _INDEX[key]
    # nvidia-smi says "NVIDIA A100-SXM4-80GB" / "NVIDIA H100 80GB HBM3": try dropping trailing words.
    for suffix in ("hbm3", "hbm3e", "hbm2e", "pcie"):
        if key.endswith(suffix) and key[: -len(suffix)] in _INDEX:
            return _INDEX[key[: -len(suffix)]]
    return None


def parse_gpu_request(text: str) -> tuple[GpuSpec, int]:
    """`RTX 4090`, `4090`, `A100-80GB`, `H20`, `M2 Ultra`, `RTX 4090x2`, `8xH20`, `8×H20` -> (spec, count)."""
    raw = text.strip()
    count = 1
    match = _COUNT_PREFIX.match(raw) or _COUNT_SUFFIX.match(raw)
    if match and find_gpu_spec(raw) is None:
        raw, count = match.group("name"), int(match.group("count"))
    spec = find_gpu_spec(raw)
    if spec is None:
        known = ", ".join(s.key for s in GPU_SPECS)
        raise UserInputError(f'Unknown GPU {text!r}. Known names: {known}. Write e.g. --gpu "RTX 4090x2".')
    if count < 1 or count > 64:
        raise UserInputError(f"GPU count {count} is out of range (1-64).")
    return spec, count
