"""Launch plans for subprocess engines (vLLM, SGLang, Ray multi-node): pure data, no side effects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SubprocessEngineKind = Literal["vllm", "sglang", "llama-server"]


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
    """`vllm serve` with tensor parallel inside a node and pipeline parallel across nodes (Ray)."""
    argv = [
        "vllm", "serve", model_path,
        "--served-model-name", served_model_name,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--tensor-parallel-size", str(placement.tensor_parallel),
        "--gpu-memory-utilization", f"{gpu_memory_utilization:.2f}",
        "--trust-remote-code",
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
        workers = (f"ray start --address={head}:6379 --num-gpus={placement.gpus_per_node}",)
        notes.append(
            f"Start the Ray head first on this node: ray start --head --num-gpus={placement.gpus_per_node}"
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
    """`python -m sglang.launch_server`; SGLang spans nodes itself (tp across all GPUs, one rank per node)."""
    total_gpus = placement.gpus_per_node * placement.nodes
    base = [
        "python3", "-m", "sglang.launch_server",
        "--model-path", model_path,
        "--served-model-name", served_model_name,
        "--tp", str(total_gpus),
        "--mem-fraction-static", f"{mem_fraction_static:.2f}",
        "--trust-remote-code",
    ]  # fmt: skip
    base += _model_args(
        "--context-length", context_tokens, quantization, "deepseek-r1" if reasoning else None
    )
    argv = base + ["--host", "127.0.0.1", "--port", str(port)]
    workers: tuple[str, ...] = ()
    if placement.nodes > 1:
        head = head_address or "<head-node-ip>"
        dist = ["--dist-init-addr", f"{head}:50000", "--nnodes", str(placement.nodes)]
        argv += dist + ["--node-rank", "0"]
        workers = tuple(
            " ".join(base + dist + ["--node-rank", str(rank)]) for rank in range(1, placement.nodes)
        )
    return LaunchPlan("sglang", tuple(argv), port, served_model_name, worker_node_commands=workers)


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
) -> LaunchPlan:
    """llama.cpp's own C++ server, e.g. as a reference in benchmarks or a crash-isolated engine."""
    argv = [binary, "-m", model_path, "--host", "127.0.0.1", "--port", str(port),
            "-c", str(context_tokens * parallel), "-np", str(parallel), "-ngl", str(gpu_layers),
            "--alias", served_model_name]  # fmt: skip
    if threads:
        argv += ["-t", str(threads)]
    return LaunchPlan("llama-server", tuple(argv), port, served_model_name)
