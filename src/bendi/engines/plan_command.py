"""The exact command bendi would start for an advisor Plan (`bendi plan --json`, GET /v1/plan)."""

from __future__ import annotations

import shlex
from typing import Any

from bendi.catalog.catalog import load_catalog
from bendi.engines import launch


def launch_command(plan: Any) -> dict[str, Any]:
    """The command bendi would start for `plan` (engines/launch.py), for `--json` and the table."""
    if plan.engine in ("vllm", "sglang"):
        model_path = plan.hf_repo or plan.model
        if plan.engine == "vllm":
            placement = launch.Placement(
                plan.tensor_parallel, plan.nodes, plan.tensor_parallel, plan.pipeline_parallel
            )
            lp = launch.vllm_plan(
                model_path, plan.model, port=launch.VLLM_PORT, placement=placement,
                context_tokens=plan.context_tokens, reasoning=False,
            )  # fmt: skip
        else:
            per_node = max(plan.tensor_parallel // max(plan.nodes, 1), 1)
            placement = launch.Placement(per_node, plan.nodes, per_node * plan.nodes, 1)
            lp = launch.sglang_plan(
                model_path, plan.model, port=launch.SGLANG_PORT, placement=placement,
                context_tokens=plan.context_tokens, reasoning=False,
            )  # fmt: skip
        return {
            "serve_command": ["bendi", "serve", "--engine", plan.engine, "--model", plan.model],
            "command": list(lp.argv),
            "command_line": shlex.join(lp.argv),
            "worker_node_commands": list(lp.worker_node_commands),
            "command_notes": list(lp.notes)
            + (
                [
                    f"bendi cluster plan {plan.model} --nodes {plan.nodes} --gpu ... prints every node's commands."
                ]
                if plan.nodes > 1
                else []
            ),
        }
    pinned = plan.numa == "pinned"
    command = ["bendi", "serve", "--engine", "llama.cpp", "--model", plan.model]
    if pinned:
        command = ["numactl", "--cpunodebind=0", "--membind=0", *command]
    files = load_catalog().resolve(plan.model).files
    equivalent = launch.llama_server_plan(
        "llama-server",
        files[0].path_in_repo if files else plan.model,
        plan.model,
        port=8080,
        context_tokens=plan.context_tokens,
        gpu_layers=plan.gpu_layers,
        override_tensors="exps=CPU" if plan.experts_on_cpu else None,
        numa="distribute" if plan.numa == "spanning" else None,
        numa_node=0 if pinned else None,
    )
    return {
        "serve_command": command,
        "command": command,
        "command_line": shlex.join(command),
        "worker_node_commands": [],
        "command_notes": [
            "bendi runs llama.cpp in its own process; the same placement with llama.cpp's llama-server: "
            + shlex.join(equivalent.argv)
        ],
    }
