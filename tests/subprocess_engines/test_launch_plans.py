"""Launch plans for vLLM / SGLang / llama-server: the command lines a multi-GPU deployment runs."""

from __future__ import annotations

import pytest

from bendi.engines.launch import Placement, llama_server_plan, sglang_plan, vllm_plan


def test_vllm_single_node_tensor_parallel() -> None:
    plan = vllm_plan("/models/r1", "deepseek-r1:671b", port=8001, placement=Placement(gpus_per_node=8, tensor_parallel=8),
                     context_tokens=32768, quantization="fp8")  # fmt: skip
    argv = list(plan.argv)
    assert argv[:3] == ["vllm", "serve", "/models/r1"]
    assert argv[argv.index("--tensor-parallel-size") + 1] == "8"
    assert argv[argv.index("--max-model-len") + 1] == "32768"
    assert argv[argv.index("--quantization") + 1] == "fp8"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"  # the engine is private; bendi is the front door
    assert "--pipeline-parallel-size" not in argv and "--distributed-executor-backend" not in argv
    assert plan.worker_node_commands == ()


def test_vllm_two_nodes_uses_ray_and_pipeline_parallel() -> None:
    placement = Placement(gpus_per_node=8, nodes=2, tensor_parallel=8, pipeline_parallel=2)
    plan = vllm_plan("/models/r1", "r1", port=8001, placement=placement, head_address="10.0.0.1")
    argv = list(plan.argv)
    assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"
    assert argv[argv.index("--distributed-executor-backend") + 1] == "ray"
    assert plan.worker_node_commands == ("ray start --address=10.0.0.1:6379 --num-gpus=8",)
    assert any("ray start --head" in note for note in plan.notes)


def test_sglang_multi_node_ranks() -> None:
    placement = Placement(gpus_per_node=8, nodes=2, tensor_parallel=16)
    plan = sglang_plan("/models/r1", "r1", port=30000, placement=placement, head_address="10.0.0.1")
    argv = list(plan.argv)
    assert argv[argv.index("--tp") + 1] == "16"
    assert argv[argv.index("--node-rank") + 1] == "0"
    assert len(plan.worker_node_commands) == 1
    assert "--node-rank 1" in plan.worker_node_commands[0]
    assert "--dist-init-addr 10.0.0.1:50000" in plan.worker_node_commands[0]


def test_placement_must_use_every_gpu_once() -> None:
    with pytest.raises(ValueError, match="must equal"):
        Placement(gpus_per_node=8, nodes=2, tensor_parallel=8, pipeline_parallel=1)


def test_llama_server_plan_sizes_context_per_slot() -> None:
    plan = llama_server_plan("/opt/llama-server", "/m.gguf", "m", port=9000, context_tokens=2048, parallel=8)
    argv = list(plan.argv)
    assert argv[argv.index("-c") + 1] == str(2048 * 8)
    assert argv[argv.index("-np") + 1] == "8"
