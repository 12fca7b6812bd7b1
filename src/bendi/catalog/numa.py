"""RAM bandwidth the CPU side really gets on a multi-socket server: one socket, pinned, spanning or replicated.

The theoretical figure (channels x 8 B x MT/s, summed over sockets) is not what an engine reads at.
Each socket has its own memory controllers; a thread reading the other socket's memory goes over the
inter-socket link (UPI / Infinity Fabric) and competes with that socket's own threads. What an engine
gets depends on how it places weights and threads:

* single     one socket: the engine's efficiency x the socket's bandwidth.
* pinned     llama.cpp confined to one NUMA node (`numactl --cpunodebind=0 --membind=0`): one socket's
             worth, no cross-socket traffic. Needs the CPU-resident weights to fit in that node's RAM.
* spanning   llama.cpp with threads on every socket and one copy of the weights (its default, or
             `--numa distribute`): still about one socket's worth of bandwidth, less the cross-socket loss.
* replicated an engine that keeps a copy of the weights per NUMA node (KTransformers' NUMA build, the
             reference's 1 TB row): every socket reads locally, with a sub-linear gain per added socket.

Calibration, all from ../shared/reference/hardware-and-models.md (section C.1):
* rows 1 and 2 (kvcache-ai/ktransformers doc/en/DeepseekR1_V3_tutorial.md, KTransformers v0.2, DeepSeek-V3
  Q4_K_M, Xeon Gold 6454S + RTX 4090D): 12.21 tok/s on two sockets with per-node replicas vs 8.73 on one.
  With the GPU part held fixed, that is a second socket adding 44% of a socket, not 100% (SECOND_SOCKET_GAIN).
* the reference has no llama.cpp measurement across two sockets. llama.cpp has no per-node replicas, so the
  spanning case is taken as one socket's worth times the same per-socket loss rows 1/2 show when the work
  spans two sockets ((1 + 0.44) / 2 = 0.72). This is the least certain number here; the plan says so.
* the per-socket efficiency itself is the engine's (speed.ENGINE_PROFILES), fitted on single-socket rows:
  2 and 7 (KTransformers on one Xeon / one EPYC socket) and 8b (llama.cpp on a Threadripper Pro).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NumaPolicy = Literal["single", "pinned", "spanning", "replicated"]
NUMA_POLICIES: tuple[NumaPolicy, ...] = ("single", "pinned", "spanning", "replicated")

SECOND_SOCKET_GAIN = 0.44  # reference rows 1 vs 2 (KTransformers, weights replicated per NUMA node)
SPANNING_FACTOR = (1 + SECOND_SOCKET_GAIN) / 2  # 0.72: one copy, threads on both sockets (see above)


@dataclass(frozen=True)
class CpuMemoryPath:
    """How the CPU side reads RAM, and the effective bandwidth that follows, with the reason."""

    policy: NumaPolicy
    sockets: int
    socket_bandwidth_gbps: float  # theoretical, one socket
    effective_gbps: float  # after the engine's efficiency and the NUMA policy
    reason: str


def choose_policy(
    sockets: int, engine_replicates: bool, cpu_resident_bytes: float, ram_bytes_per_node: float
) -> tuple[NumaPolicy, str]:
    """The placement an operator should use (and bendi's command uses) for the CPU-resident weights."""
    if sockets <= 1:
        return "single", "one CPU socket"
    if engine_replicates:
        return "replicated", f"a copy of the weights on each of the {sockets} NUMA nodes"
    if cpu_resident_bytes <= ram_bytes_per_node:
        return (
            "pinned",
            f"the CPU-side weights ({cpu_resident_bytes / 1e9:.0f} GB) fit in one NUMA node's RAM "
            f"({ram_bytes_per_node / 1e9:.0f} GB), so llama.cpp is pinned to node 0 "
            "(numactl --cpunodebind=0 --membind=0): one socket's bandwidth, no cross-socket reads",
        )
    return (
        "spanning",
        f"the CPU-side weights ({cpu_resident_bytes / 1e9:.0f} GB) do not fit in one NUMA node's RAM "
        f"({ram_bytes_per_node / 1e9:.0f} GB), so llama.cpp spans the {sockets} sockets (--numa distribute) "
        "with one copy of the weights",
    )


def cpu_memory_path(
    total_bandwidth_gbps: float, sockets: int, efficiency: float, policy: NumaPolicy
) -> CpuMemoryPath:
    """Effective RAM bandwidth for `policy` on a machine whose sockets together offer `total_bandwidth_gbps`."""
    sockets = max(sockets, 1)
    per_socket = total_bandwidth_gbps / sockets
    base = per_socket * efficiency
    if policy == "single" or sockets == 1:
        return CpuMemoryPath(
            "single",
            1,
            per_socket,
            base,
            f"{per_socket:.0f} GB/s x {efficiency:.2f} engine efficiency",
        )
    if policy == "pinned":
        return CpuMemoryPath(
            policy,
            sockets,
            per_socket,
            base,
            f"one socket of {sockets}: {per_socket:.0f} GB/s x {efficiency:.2f} engine efficiency (pinned)",
        )
    if policy == "replicated":
        gain = 1 + (sockets - 1) * SECOND_SOCKET_GAIN
        return CpuMemoryPath(
            policy,
            sockets,
            per_socket,
            base * gain,
            f"{sockets} sockets with a replica each: {per_socket:.0f} GB/s x {efficiency:.2f} x {gain:.2f} "
            "(each added socket gives 44%, reference rows 1 vs 2)",
        )
    return CpuMemoryPath(
        "spanning",
        sockets,
        per_socket,
        base * SPANNING_FACTOR,
        f"about one socket of {sockets}: {per_socket:.0f} GB/s x {efficiency:.2f} x {SPANNING_FACTOR:.2f} "
        "cross-socket loss (llama.cpp keeps one copy of the weights; not the "
        f"{total_bandwidth_gbps:.0f} GB/s of all sockets)",
    )
