"""Machines described by a few words (`--gpu "RTX 4090x2" --ram 64`), and the reference machines."""

from __future__ import annotations

from bendi.catalog.gpus import parse_gpu_request
from bendi.core.errors import UserInputError
from bendi.hardware.profile import CpuInfo, GpuInfo, HardwareProfile

GB = 10**9
GIB = 2**30
OS_RESERVE_FRACTION = 0.06  # the OS, a desktop session and page cache slack on a hypothetical machine
OS_RESERVE_MIN_BYTES = 2 * GIB
GPU_RESERVE_BYTES = 300 * 2**20  # display / driver use on a hypothetical GPU
MAX_SOCKETS = 8


def describe_machine(
    gpu: str | None = None,
    ram_gb: float | None = None,
    ram_bandwidth_gbps: float | None = None,
    nodes: int = 1,
    label: str | None = None,
    base: HardwareProfile | None = None,
    sockets: int | None = None,
) -> HardwareProfile:
    """A hypothetical machine; fields not given come from `base` (the detected machine) when present.

    `ram_bandwidth_gbps` is the whole machine's (all sockets); `sockets` is its NUMA node count.
    """
    if ram_gb is not None and not 0 < ram_gb <= 16384:
        raise UserInputError(
            f"--ram {ram_gb} GB is out of range; give the machine's RAM in GB, e.g. --ram 64."
        )
    if nodes < 1 or nodes > 64:
        raise UserInputError(f"--nodes {nodes} is out of range (1-64).")
    if sockets is not None and not 1 <= sockets <= MAX_SOCKETS:
        raise UserInputError(
            f"--sockets {sockets} is out of range (1-{MAX_SOCKETS}); give the CPU sockets (NUMA nodes) per machine."
        )
    gpus: tuple[GpuInfo, ...] = base.gpus if base is not None and gpu is None else ()
    unified_total = 0
    if gpu:
        spec, count = parse_gpu_request(gpu)
        if spec.unified_memory:
            unified_total = int((ram_gb or spec.memory_gb) * GB)
            share = 0.70 if unified_total <= 36 * GIB else 0.78  # Metal's default working-set limit
            gpus = (
                GpuInfo(
                    spec.key,
                    "apple",
                    int(unified_total * share),
                    int(unified_total * share),
                    unified_memory=True,
                ),
            )
        else:
            per_gpu = spec.memory_bytes
            gpus = tuple(
                GpuInfo(spec.key, spec.vendor, per_gpu, per_gpu - GPU_RESERVE_BYTES) for _ in range(count)
            )
    if ram_gb is not None:
        ram_total = int(ram_gb * GB)
        ram_available = ram_total - max(OS_RESERVE_MIN_BYTES, int(ram_total * OS_RESERVE_FRACTION))
    elif unified_total:
        ram_total = unified_total
        ram_available = ram_total - max(OS_RESERVE_MIN_BYTES, int(ram_total * OS_RESERVE_FRACTION))
    elif base is not None:
        ram_total, ram_available = base.ram_total_bytes, base.ram_available_bytes
    else:
        raise UserInputError("Give the machine's RAM with --ram GB when planning for another machine.")
    cpu = base.cpu if base is not None else CpuInfo("unspecified CPU", 8, 16, ("avx2", "fma"))
    if gpus and gpus[0].unified_memory:
        cpu = CpuInfo(gpus[0].name, 12, 12, ("neon", "dotprod"), "arm64")
    parts = [gpu or "", f"{ram_gb:g} GB RAM" if ram_gb else ""]
    return HardwareProfile(
        cpu=cpu,
        ram_total_bytes=ram_total,
        ram_available_bytes=max(ram_available, 0),
        gpus=gpus,
        disk_free_bytes=base.disk_free_bytes if base is not None else None,
        os="darwin" if unified_total else (base.os if base is not None else "linux"),
        ram_bandwidth_gbps=ram_bandwidth_gbps
        if ram_bandwidth_gbps is not None
        else (base.ram_bandwidth_gbps if base is not None else None),
        nodes=nodes,
        numa_nodes=1 if unified_total else (sockets or (base.numa_nodes if base is not None else 1)),
        label=label or " + ".join(p for p in parts if p) or "described machine",
    )


# The machines the issue names, plus the servers `--hardware-options` proposes.
NAMED_MACHINES: dict[str, dict[str, object]] = {
    "laptop-16gb": {"ram_gb": 16, "ram_bandwidth_gbps": 51.2},
    "desktop-32gb-rtx4060": {"gpu": "RTX 4060", "ram_gb": 32, "ram_bandwidth_gbps": 51.2},
    "workstation-2x4090-128gb": {"gpu": "RTX 4090x2", "ram_gb": 128, "ram_bandwidth_gbps": 89.6},
    "server-8xh20": {"gpu": "H20x8", "ram_gb": 1024, "ram_bandwidth_gbps": 307.2},
    "mac-m2-ultra-192gb": {"gpu": "M2 Ultra", "ram_gb": 192},
}


def named_machine(name: str) -> HardwareProfile:
    spec = NAMED_MACHINES[name]
    return describe_machine(label=name, **spec)  # type: ignore[arg-type]
