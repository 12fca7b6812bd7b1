"""`bendi cluster plan|up`: one model over several machines (vLLM on Ray, or SGLang's own multi-node launch)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import shlex
from typing import Any, Literal

from bendi.core.errors import UserInputError

DEFAULT_WAIT_S = 300.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="serve one model over several machines: the per-node commands, or bring up the head node",
        description="vLLM spans machines with Ray (pipeline parallel between nodes); SGLang with its own "
        "--nnodes/--node-rank/--dist-init-addr (no Ray).",
    )
    sub = parser.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND")
    plan = sub.add_parser("plan", help="print every node's commands, in order")
    plan.add_argument("model", help="e.g. deepseek-r1:671b")
    plan.add_argument("--nodes", type=int, help="machines (default: the number of --nodes-ip, else 2)")
    plan.add_argument("--gpu", required=True, help='GPUs per node, e.g. "8xH20", "H100x8"')
    plan.add_argument(
        "--ram", type=float, dest="ram_gb", default=1024, help="RAM per node in GB (default 1024)"
    )
    plan.add_argument(
        "--nodes-ip", help="node addresses, head first, comma-separated (default: placeholders)"
    )
    plan.add_argument(
        "--engine", choices=("vllm", "sglang"), help="default: SGLang for DeepSeek V3/R1, else vLLM"
    )
    plan.add_argument("--quant", help="a quant from the catalog, e.g. FP8 (default: the advisor's choice)")
    plan.add_argument("--ctx", type=int, dest="context_tokens", help="context window in tokens")
    plan.add_argument("--ray-port", type=int, default=6379, help="Ray's GCS port on the head (default 6379)")
    plan.add_argument("--json", action="store_true", help="print JSON instead of text")
    plan.set_defaults(func=handle_plan)
    up = sub.add_parser(
        "up",
        help="on the head node: start Ray's head, wait for the workers, then start vLLM on Ray",
        description="Run this on the head node (the first address of --nodes-ip), then start the Ray workers "
        "on the other nodes (bendi cluster plan prints their commands). Ctrl-C stops vLLM and the Ray head.",
    )
    up.add_argument("model", help="the served model name, e.g. deepseek-r1:671b")
    up.add_argument(
        "--nodes-ip", required=True, help="node addresses, this (head) node first, comma-separated"
    )
    up.add_argument("--gpus-per-node", type=int, help="GPUs on each node (default: this node's NVIDIA GPUs)")
    up.add_argument("--model-path", help="the model directory or hub id vLLM loads (default: the catalog's)")
    up.add_argument("--ctx", type=int, dest="context_tokens", help="vLLM --max-model-len")
    up.add_argument(
        "--port", type=int, default=8000, help="vLLM's port on this node's loopback (default 8000)"
    )
    up.add_argument("--ray-port", type=int, default=6379, help="Ray's GCS port (default 6379)")
    up.add_argument(
        "--ray-args", default="", help='more `ray start --head` flags, e.g. "--temp-dir /srv/ray"'
    )
    up.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        help=f"seconds to wait for the workers (default {DEFAULT_WAIT_S:g})",
    )
    up.add_argument("--engine", choices=("vllm", "sglang"), default="vllm", help=argparse.SUPPRESS)
    up.set_defaults(func=handle_up)
    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def parse_addresses(text: str | None, nodes: int | None) -> tuple[str, ...]:
    """`10.0.0.1,10.0.0.2` -> addresses (IPv4/IPv6 literals or host names); placeholders when not given."""
    if not text:
        count = nodes or 2
        if count < 2:
            raise UserInputError("A cluster needs at least 2 nodes (--nodes 2).")
        return tuple(f"<node{i}-ip>" for i in range(count))
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    for part in parts:
        try:
            ipaddress.ip_address(part)
        except ValueError:
            if not part.replace("-", "").replace(".", "").isalnum():
                raise UserInputError(f"{part!r} in --nodes-ip is not an IP address or host name.") from None
    if len(parts) < 2 or len(set(parts)) != len(parts):
        raise UserInputError(
            "--nodes-ip needs at least two different addresses, the head first: 10.0.0.1,10.0.0.2"
        )
    if nodes is not None and nodes != len(parts):
        raise UserInputError(f"--nodes {nodes} does not match the {len(parts)} addresses in --nodes-ip.")
    return parts


def handle_plan(args: argparse.Namespace) -> int:
    from bendi.catalog.catalog import load_catalog
    from bendi.catalog.engine_choice import plan_serving
    from bendi.catalog.machines import describe_machine
    from bendi.engines.launch import cluster_plan

    addresses = parse_addresses(args.nodes_ip, args.nodes)
    catalog = load_catalog()
    name = args.model if not args.quant else f"{args.model}-{args.quant}"
    variant = catalog.resolve(name)
    machine = describe_machine(
        args.gpu, args.ram_gb, nodes=len(addresses), label=f"{len(addresses)} nodes of {args.gpu}"
    )
    engine: Literal["vllm", "sglang"] = args.engine or ("sglang" if variant.architecture.is_mla else "vllm")
    quant_given = bool(args.quant) or catalog.names_quant(args.model)
    plan = plan_serving(variant, machine, args.context_tokens, engine, quant_given)
    if args.engine is None and plan.quant.upper() == "AWQ" and engine != "vllm":
        engine = "vllm"  # the AWQ checkpoints of the MLA models are made for vLLM's kernels (choose_engine)
        plan = plan_serving(variant, machine, args.context_tokens, engine, quant_given)
    if not plan.fits:
        raise UserInputError(f"{plan.model} on {len(addresses)} nodes of {args.gpu}: {plan.reason}")
    gpus = len(machine.gpus)
    cluster = cluster_plan(
        engine, plan.hf_repo or plan.model, plan.model, addresses=addresses, gpus_per_node=gpus,
        context_tokens=plan.context_tokens, ray_port=args.ray_port,
    )  # fmt: skip
    if args.json:
        print(json.dumps(_plan_json(plan, cluster), indent=2, ensure_ascii=False))
        return 0
    print(
        f"{plan.model} ({plan.quant}, {plan.hf_repo}) with {engine} on {len(addresses)} nodes of {args.gpu}: "
        f"{plan.total_bytes / 1e9:.0f} GB, about {plan.decode_tokens_per_s:.0f} tok/s single-user."
    )
    if plan.nodes < len(addresses):
        print(f"Note: it would fit on {plan.nodes} node(s); these commands use all {len(addresses)}.")
    for node, address in enumerate(addresses):
        role = "head" if node == 0 else "worker"
        print(f"\nNode {node} ({address}, {role}):")
        for step in cluster.for_node(node):
            print(f"  [step {step.order}] {step.purpose}\n    {step.shell}")
    print()
    for note in cluster.notes:
        print(f"- {note}")
    return 0


def _plan_json(plan: Any, cluster: Any) -> dict[str, Any]:
    return {
        "model": plan.model,
        "engine": cluster.engine,
        "quant": plan.quant,
        "hf_repo": plan.hf_repo,
        "plan": plan.to_json(),
        "nodes": [
            {
                "node": node,
                "address": address,
                "steps": [
                    {
                        "order": s.order,
                        "purpose": s.purpose,
                        "argv": list(s.argv),
                        "env": dict(s.env),
                        "command_line": s.shell,
                    }
                    for s in cluster.for_node(node)
                ],
            }
            for node, address in enumerate(cluster.addresses)
        ],
        "notes": list(cluster.notes),
    }


def handle_up(args: argparse.Namespace) -> int:
    from bendi.cli.cluster_up import ClusterUp
    from bendi.core.settings import load_settings

    if args.engine == "sglang":
        raise UserInputError(
            "SGLang does not use Ray: start its command on every node yourself; "
            f"`bendi cluster plan {args.model} --engine sglang --nodes-ip {args.nodes_ip} --gpu ...` prints them."
        )
    addresses = parse_addresses(args.nodes_ip, None)
    settings = load_settings()
    gpus = args.gpus_per_node if args.gpus_per_node is not None else _local_gpus()
    if gpus < 1:
        raise UserInputError(
            "This node has no NVIDIA GPU, and vLLM on Ray places one worker per GPU. Run this on a GPU "
            "node, or give --gpus-per-node N (Ray then advertises N GPUs per node, e.g. to test the setup)."
        )
    try:
        ray = shlex.split(settings.ray_command)
    except ValueError as exc:
        raise UserInputError(
            f"The ray_command setting {settings.ray_command!r} cannot be parsed: {exc}."
        ) from exc
    up = ClusterUp(
        settings=settings,
        ray=tuple(ray),
        addresses=addresses,
        gpus_per_node=gpus,
        served_name=args.model,
        model_path=args.model_path or _model_path(args.model),
        context_tokens=args.context_tokens,
        port=args.port,
        ray_port=args.ray_port,
        ray_args=tuple(shlex.split(args.ray_args)),
        wait_s=args.wait,
    )
    return up.run()


def _local_gpus() -> int:
    from bendi.hardware.probe import probe

    return sum(1 for g in probe().gpus if g.vendor == "nvidia")


def _model_path(model: str) -> str:
    """The checkpoint's hub id for a catalog model (the one named, else FP8 before BF16 before AWQ); else ask
    for --model-path."""
    from bendi.catalog.catalog import load_catalog
    from bendi.catalog.engine_choice import PREFERENCE, checkpoints
    from bendi.core.errors import ModelNotFoundError

    try:
        variant = load_catalog().resolve(model)
    except ModelNotFoundError:
        variant = None
    if variant is not None and variant.format == "safetensors" and variant.hf_repo:
        return variant.hf_repo  # a checkpoint named outright (deepseek-r1:671b-awq)
    found = checkpoints(variant) if variant is not None else []
    if not found:
        raise UserInputError(
            f"bendi does not know a Hugging Face-format checkpoint for {model!r}; give --model-path DIR "
            "(the same path on every node) or a hub id."
        )
    return min(found, key=lambda c: PREFERENCE.get(c.facts.quant.upper(), len(PREFERENCE))).hf_repo
