"""Launch plans for subprocess engines and multi-node deployments: pure data, no side effects.

vLLM spans nodes with Ray; SGLang with its own multi-node launch (no Ray); llama-server is single-node.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

SubprocessEngineKind = Literal["vllm", "sglang", "llama-server"]
RAY_PORT = 6379  # Ray's default GCS port
SGLANG_DIST_PORT = 50000  # SGLang's torch.distributed rendezvous on the rank-0 node (--dist-init-addr)
VLLM_PORT = 8000
SGLANG_PORT = 30000


@dataclass(frozen=True)
class Placement:
    """Where a model runs: how many GPUs per node, how many nodes, how they split the model."""

    gpus_per_node: int = 1
    nodes: int = 1
    tensor_parallel: int = 1
    pipeline_parallel: int = 1

    def __post_init__(self) -> None:
        if self.tensor_parallel * self.pipeline_parallel != self.gpus_per_node * self.nodes:
            raise ValueError(
                f"tensor_parallel ({self.tensor_parallel}) × pipeline_parallel ({self.pipeline_parallel}) "
                f"must equal the GPUs in use ({self.gpus_per_node} per node × {self.nodes} nodes)"
            )


@dataclass(frozen=True)
class LaunchPlan:
    """Everything needed to start one OpenAI-compatible engine server and know when it is ready."""

    kind: SubprocessEngineKind
    argv: tuple[str, ...]
    port: int
    served_model_name: str
    env: tuple[tuple[str, str], ...] = ()
    health_path: str = "/health"
    # Commands an operator runs on the other nodes first (Ray workers, SGLang ranks > 0).
    worker_node_commands: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _model_args(
    context_flag: str, context_tokens: int | None, quantization: str | None, reasoning_parser: str | None
) -> list[str]:
    """The optional flags vLLM and SGLang share (but for the context flag's name): only those asked for."""
    args: list[str] = []
    if context_tokens:
        args += [context_flag, str(context_tokens)]
    if quantization:
        args += ["--quantization", quantization]
    if reasoning_parser:
        args += ["--reasoning-parser", reasoning_parser]
    return args


def vllm_plan(
    model_path: str,
    served_model_name: str,
    *,
    port: int,
    placement: Placement = Placement(),
    context_tokens: int | None = None,
    quantization: str | None = None,
    gpu_memory_utilization: float = 0.90,
    reasoning: bool = True,
    head_address: str | None = None,
) -> LaunchPlan:
    """`vllm serve` with tensor parallel inside a node and pipeline parallel across nodes (Ray).

    No --trust-remote-code (here or for SGLang): bendi never runs a model directory's own Python code.
    """
    argv = [
        "vllm", "serve", model_path,
        "--served-model-name", served_model_name,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--tensor-parallel-size", str(placement.tensor_parallel),
        "--gpu-memory-utilization", f"{gpu_memory_utilization:.2f}",
    ]  # fmt: skip
    if placement.pipeline_parallel > 1:
        argv += ["--pipeline-parallel-size", str(placement.pipeline_parallel)]
    argv += _model_args("--max-model-len", context_tokens, quantization, "deepseek_r1" if reasoning else None)
    workers: tuple[str, ...] = ()
    notes: list[str] = []
    if placement.nodes > 1:
        # Multi-node vLLM needs a Ray cluster: head here, workers join it before vLLM starts.
        argv += ["--distributed-executor-backend", "ray"]
        head = head_address or "<head-node-ip>"
        workers = (f"ray start --address={head}:{RAY_PORT} --num-gpus={placement.gpus_per_node}",)
        notes.append(
            f"Start the Ray head first on this node: ray start --head --node-ip-address {head} "
            f"--port {RAY_PORT} --num-gpus={placement.gpus_per_node}; then run vLLM here with "
            f"RAY_ADDRESS={head}:{RAY_PORT} VLLM_HOST_IP={head} (bendi cluster plan prints every node's commands)."
        )
        notes.append(
            "All nodes need the same model path and vLLM version, and a fast interconnect (InfiniBand/RoCE)."
        )
    return LaunchPlan(
        "vllm", tuple(argv), port, served_model_name, worker_node_commands=workers, notes=tuple(notes)
    )


def sglang_plan(
    model_path: str,
    served_model_name: str,
    *,
    port: int,
    placement: Placement = Placement(),
    context_tokens: int | None = None,
    quantization: str | None = None,
    mem_fraction_static: float = 0.85,
    reasoning: bool = True,
    head_address: str | None = None,
) -> LaunchPlan:
    """`python -m sglang.launch_server`; SGLang spans nodes itself (one tensor-parallel group over every GPU,
    one rank per node, rendezvous at --dist-init-addr on rank 0). It does not use Ray."""
    ranks = sglang_rank_argvs(
        model_path,
        served_model_name,
        port=port,
        placement=placement,
        context_tokens=context_tokens,
        quantization=quantization,
        mem_fraction_static=mem_fraction_static,
        reasoning=reasoning,
        head_address=head_address,
    )
    workers = tuple(" ".join(argv) for argv in ranks[1:])
    return LaunchPlan("sglang", ranks[0], port, served_model_name, worker_node_commands=workers)


def sglang_rank_argvs(
    model_path: str,
    served_model_name: str,
    *,
    port: int,
    placement: Placement = Placement(),
    context_tokens: int | None = None,
    quantization: str | None = None,
    mem_fraction_static: float = 0.85,
    reasoning: bool = True,
    head_address: str | None = None,
) -> tuple[tuple[str, ...], ...]:
    """One argv per node: rank 0 serves HTTP; ranks > 0 only join the tensor-parallel group."""
    total_gpus = placement.gpus_per_node * placement.nodes
    base = [
        "python3", "-m", "sglang.launch_server",
        "--model-path", model_path,
        "--served-model-name", served_model_name,
        "--tp", str(total_gpus),
        "--mem-fraction-static", f"{mem_fraction_static:.2f}",
    ]  # fmt: skip
    base += _model_args(
        "--context-length", context_tokens, quantization, "deepseek-r1" if reasoning else None
    )
    head_argv = base + ["--host", "127.0.0.1", "--port", str(port)]
    if placement.nodes == 1:
        return (tuple(head_argv),)
    head = head_address or "<head-node-ip>"
    dist = ["--dist-init-addr", f"{head}:{SGLANG_DIST_PORT}", "--nnodes", str(placement.nodes)]
    return (tuple(head_argv + dist + ["--node-rank", "0"]),) + tuple(
        tuple(base + dist + ["--node-rank", str(rank)]) for rank in range(1, placement.nodes)
    )


def llama_server_plan(
    binary: str,
    model_path: str,
    served_model_name: str,
    *,
    port: int,
    context_tokens: int = 4096,
    parallel: int = 1,
    threads: int | None = None,
    gpu_layers: int = 0,
    override_tensors: str | None = None,
    numa: str | None = None,
    numa_node: int | None = None,
) -> LaunchPlan:
    """llama.cpp's own C++ server, e.g. as a reference in benchmarks or a crash-isolated engine.

    `override_tensors="exps=CPU"` keeps MoE routed experts in RAM; `numa="distribute"` spreads threads over
    the NUMA nodes; `numa_node=0` runs the whole server on one node (numactl), which is faster when the
    CPU-side weights fit in that node's RAM (bendi.catalog.numa).
    """
    argv = [binary, "-m", model_path, "--host", "127.0.0.1", "--port", str(port),
            "-c", str(context_tokens * parallel), "-np", str(parallel), "-ngl", str(gpu_layers),
            "--alias", served_model_name]  # fmt: skip
    if override_tensors:
        argv += ["-ot", override_tensors]
    if numa:
        argv += ["--numa", numa]
    if threads:
        argv += ["-t", str(threads)]
    if numa_node is not None:
        argv = ["numactl", f"--cpunodebind={numa_node}", f"--membind={numa_node}", *argv]
    return LaunchPlan("llama-server", tuple(argv), port, served_model_name)


@dataclass(frozen=True)
class ClusterStep:
    """One command on one node, in the order an operator runs them."""

    order: int
    node: int  # 0 is the head (Ray head for vLLM, rank 0 for SGLang)
    address: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    purpose: str = ""

    @property
    def shell(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env)
        return f"{env} {shlex.join(self.argv)}" if env else shlex.join(self.argv)


@dataclass(frozen=True)
class ClusterPlan:
    engine: Literal["vllm", "sglang"]
    addresses: tuple[str, ...]
    steps: tuple[ClusterStep, ...]
    notes: tuple[str, ...] = ()

    def for_node(self, node: int) -> tuple[ClusterStep, ...]:
        return tuple(s for s in self.steps if s.node == node)


def ray_head_argv(ray: str, address: str, port: int, gpus: int, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The Ray head for vLLM: no dashboard and no usage reporting (nothing leaves the cluster)."""
    return (ray, "start", "--head", "--node-ip-address", address, "--port", str(port), "--num-gpus", str(gpus),
            "--include-dashboard", "false", "--disable-usage-stats", *extra)  # fmt: skip


def ray_worker_argv(
    ray: str, head: str, port: int, address: str, gpus: int, extra: Sequence[str] = ()
) -> tuple[str, ...]:
    return (ray, "start", "--address", f"{head}:{port}", "--node-ip-address", address,
            "--num-gpus", str(gpus), "--disable-usage-stats", *extra)  # fmt: skip


def vllm_ray_env(head: str, port: int) -> tuple[tuple[str, str], ...]:
    """What vLLM on the head needs to find the Ray cluster and its own address in it."""
    return (("RAY_ADDRESS", f"{head}:{port}"), ("VLLM_HOST_IP", head))


def cluster_plan(
    engine: Literal["vllm", "sglang"],
    model_path: str,
    served_model_name: str,
    *,
    addresses: Sequence[str],
    gpus_per_node: int,
    context_tokens: int | None = None,
    ray_command: str = "ray",
    ray_port: int = RAY_PORT,
    port: int | None = None,
    reasoning: bool = False,
) -> ClusterPlan:
    """Every node's commands: vLLM = Ray head, Ray workers, `ray status`, then vLLM with TP inside a node and
    PP across nodes on Ray; SGLang = one launch_server per node with --nnodes/--node-rank (no Ray)."""
    nodes = len(addresses)
    if nodes < 2:
        raise ValueError("a cluster plan needs at least two node addresses")
    head = addresses[0]
    if engine == "sglang":
        ranks = sglang_rank_argvs(
            model_path,
            served_model_name,
            port=port or SGLANG_PORT,
            placement=Placement(gpus_per_node, nodes, gpus_per_node * nodes, 1),
            context_tokens=context_tokens,
            reasoning=reasoning,
            head_address=head,
        )
        steps = tuple(
            ClusterStep(
                1, rank, addresses[rank], argv, (), "rank 0: serves HTTP" if rank == 0 else f"rank {rank}"
            )
            for rank, argv in enumerate(ranks)
        )
        notes = (
            f"SGLang does not use Ray: its ranks meet at {head}:{SGLANG_DIST_PORT} (--dist-init-addr); start "
            "every node's command, in any order, within a few minutes of each other.",
            _front_door(served_model_name, port or SGLANG_PORT),
        )
        return ClusterPlan("sglang", tuple(addresses), steps, notes)
    placement = Placement(gpus_per_node, nodes, gpus_per_node, nodes)
    serve = vllm_plan(
        model_path,
        served_model_name,
        port=port or VLLM_PORT,
        placement=placement,
        context_tokens=context_tokens,
        reasoning=reasoning,
        head_address=head,
    )
    ray_steps = [
        ClusterStep(1, 0, head, ray_head_argv(ray_command, head, ray_port, gpus_per_node),
                    (("VLLM_HOST_IP", head),), "Ray head"),
        *(
            ClusterStep(2, i, addr, ray_worker_argv(ray_command, head, ray_port, addr, gpus_per_node),
                        (("VLLM_HOST_IP", addr),), "Ray worker: joins the head")
            for i, addr in enumerate(addresses[1:], start=1)
        ),
        ClusterStep(3, 0, head, (ray_command, "status", "--address", f"{head}:{ray_port}"), (),
                    f"check: {nodes} active nodes and {nodes * gpus_per_node} GPUs"),
        ClusterStep(4, 0, head, serve.argv, vllm_ray_env(head, ray_port),
                    f"vLLM: tensor parallel {gpus_per_node} in each node, pipeline parallel {nodes} over Ray"),
    ]  # fmt: skip
    ray_notes = (
        "Every node needs the same vLLM and Ray versions and the model at the same path.",
        f"Open between the nodes: {ray_port} (Ray GCS) and Ray's node-manager, object-manager and worker ports; "
        "Ray listens on all interfaces, so keep these ports behind a firewall.",
        "bendi cluster up runs steps 1, 3 and 4 on the head and waits for the workers of step 2.",
        _front_door(served_model_name, port or VLLM_PORT),
    )
    return ClusterPlan("vllm", tuple(addresses), tuple(ray_steps), ray_notes)


def _front_door(served_model_name: str, port: int) -> str:
    return (
        f"The engine listens on the head's loopback only (http://127.0.0.1:{port}, model "
        f"{served_model_name}); clients on other machines reach it through a front end on the head "
        "(bendi's upstream replicas, issue 15, are not built yet)."
    )
