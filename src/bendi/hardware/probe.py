"""Find out what this machine has: CPU, RAM, disk and GPUs (nvidia-smi, rocm-smi, Apple), quickly, without root."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import psutil

from bendi.hardware.profile import CpuInfo, GpuInfo, HardwareProfile

# llama.cpp picks its kernels from these; anything else in /proc/cpuinfo is noise for the advisor.
SIMD_FLAGS = (
    "sse3",
    "ssse3",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "neon",
    "asimd",
    "sve",
    "dotprod",
)
NVIDIA_SMI_TIMEOUT_S = 3.0
MIB = 1024 * 1024
SYSFS_NODES = Path("/sys/devices/system/node")


def probe(disk_path: Path | None = None) -> HardwareProfile:
    """Describe this machine. Never raises for a missing tool: a machine without GPUs is normal."""
    memory = psutil.virtual_memory()
    disk_free: int | None = None
    try:
        disk_free = shutil.disk_usage(disk_path or Path.home()).free
    except OSError:
        disk_free = None
    system = platform.system().lower()
    cpu = _probe_cpu(system)
    gpus: tuple[GpuInfo, ...] = _probe_nvidia() + _probe_amd()
    if system == "darwin" and platform.machine() == "arm64":
        gpus += (_apple_gpu(cpu.model, memory.total, memory.available),)
    return HardwareProfile(
        cpu=cpu,
        ram_total_bytes=int(memory.total),
        ram_available_bytes=int(memory.available),
        gpus=gpus,
        disk_free_bytes=disk_free,
        os=system,
        numa_nodes=numa_nodes_from_sysfs(SYSFS_NODES),
    )


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """The kernel's list format: '0-3,8,10-11' -> (0, 1, 2, 3, 8, 10, 11); anything unreadable -> ()."""
    found: list[int] = []
    for part in text.strip().split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return ()
        found.extend(range(int(low), int(high or low) + 1))
    return tuple(found)


def numa_nodes_from_sysfs(root: Path) -> int:
    """NUMA nodes that have CPUs (memory-only nodes such as CXL or HBM expanders do not count); 1 if unknown.

    A dual-socket server shows 2 (4 with sub-NUMA clustering), a desktop 1; macOS has no such folder.
    """
    try:
        listed = parse_cpu_list((root / "has_cpu").read_text())
    except OSError:
        listed = ()
    if listed:
        return len(listed)
    count = 0
    for node in root.glob("node[0-9]*"):
        try:
            count += bool(parse_cpu_list((node / "cpulist").read_text(errors="replace")))
        except OSError:
            continue
    return max(count, 1)


def _probe_cpu(system: str) -> CpuInfo:
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if system == "linux" and cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "Hardware") and value.strip():
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    elif system == "darwin":
        model = _sysctl("machdep.cpu.brand_string") or model
        if platform.machine() == "arm64":
            flags = {"neon", "dotprod"}
    return CpuInfo(
        model=model,
        physical_cores=psutil.cpu_count(logical=False) or os.cpu_count() or 1,
        logical_cores=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        flags=tuple(f for f in SIMD_FLAGS if f in flags),
        architecture=platform.machine(),
    )


def _sysctl(key: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _apple_gpu(chip: str, ram_total_bytes: int, ram_available_bytes: int) -> GpuInfo:
    # Metal may wire only ~70-78% of unified memory by default (Apple tech talk 10580).
    share = 0.70 if ram_total_bytes <= 36 * 2**30 else 0.78
    return GpuInfo(
        name=chip,
        vendor="apple",
        memory_total_bytes=int(ram_total_bytes * share),
        memory_free_bytes=int(min(ram_available_bytes, ram_total_bytes * share)),
        unified_memory=True,
    )


def _probe_nvidia() -> tuple[GpuInfo, ...]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    try:
        out = subprocess.run(
            [exe, "-q", "-x"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if out.returncode != 0:
        return ()
    try:
        return parse_nvidia_smi_xml(out.stdout)
    except ET.ParseError:
        return ()


def _probe_amd() -> tuple[GpuInfo, ...]:
    exe = shutil.which("rocm-smi")
    if exe is None:
        return ()
    command = [exe, "--showproductname", "--showmeminfo", "vram", "--showdriverversion", "--json"]
    try:
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=False
        )
        return parse_rocm_smi_json(out.stdout) if out.returncode == 0 else ()
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return ()


def parse_rocm_smi_json(text: str) -> tuple[GpuInfo, ...]:
    """GPUs from `rocm-smi --showproductname --showmeminfo vram --json` ({"card0": {...}, "system": {...}})."""
    data = json.loads(text)
    driver = data.get("system", {}).get("Driver version")
    gpus = []
    for key in sorted(k for k in data if k.startswith("card")):
        card = data[key]
        total = int(card.get("VRAM Total Memory (B)", 0))
        used = int(card.get("VRAM Total Used Memory (B)", 0))
        name = card.get("Card Series") or card.get("Card series") or card.get("Card model") or "AMD GPU"
        gpus.append(
            GpuInfo(
                name=str(name),
                vendor="amd",
                memory_total_bytes=total,
                memory_free_bytes=max(total - used, 0),
                driver_version=driver,
            )
        )
    return tuple(gpus)


def _mib(text: str | None) -> int:
    """'24564 MiB' -> bytes; anything unreadable -> 0."""
    if not text:
        return 0
    number = text.strip().split()[0]
    try:
        return int(float(number) * MIB)
    except ValueError:
        return 0


def parse_nvidia_smi_xml(xml_text: str) -> tuple[GpuInfo, ...]:
    """GPUs from `nvidia-smi -q -x` output (the format is stable across drivers 450-570)."""
    root = ET.fromstring(xml_text)
    driver = root.findtext("driver_version")
    gpus = []
    for gpu in root.findall("gpu"):
        name = gpu.findtext("product_name") or "NVIDIA GPU"
        fb = gpu.find("fb_memory_usage")
        total = _mib(fb.findtext("total") if fb is not None else None)
        free = _mib(fb.findtext("free") if fb is not None else None)
        cc = gpu.findtext("compute_cap")
        gpus.append(
            GpuInfo(
                name=name,
                vendor="nvidia",
                memory_total_bytes=total,
                memory_free_bytes=free,
                driver_version=driver,
                compute_capability=cc,
            )
        )
    return tuple(gpus)


def gpus_from_nvml_records(
    records: Iterable[Mapping[str, Any]], driver_version: str | None
) -> tuple[GpuInfo, ...]:
    """GPUs from NVML-shaped data: {'name', 'memory': {'total', 'free'} in bytes, 'cuda_compute_capability'}."""
    gpus = []
    for record in records:
        memory = record["memory"]
        cc = record.get("cuda_compute_capability")
        gpus.append(
            GpuInfo(
                name=str(record["name"]),
                vendor="nvidia",
                memory_total_bytes=int(memory["total"]),
                memory_free_bytes=int(memory["free"]),
                driver_version=driver_version,
                compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
            )
        )
    return tuple(gpus)
