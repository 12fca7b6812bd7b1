"""Engine and weights per machine: vLLM/SGLang with the publisher's checkpoint on data-center GPUs that hold it,
llama.cpp with GGUF elsewhere; `bendi plan` reports the engine, the quant and the command it would start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bendi.catalog.catalog import load_catalog
from bendi.catalog.engine_choice import gpu_class, plan_serving
from bendi.cli.main import main
from bendi.hardware.profile import HardwareProfile

MACHINES = Path(__file__).parent / "fixtures" / "machines"


def machine(name: str) -> HardwareProfile:
    return HardwareProfile.from_json((MACHINES / f"{name}.json").read_text())


def gpus_kept(name: str, count: int, gpu_name: str | None = None) -> HardwareProfile:
    """A fixture machine with only its first `count` GPUs (renamed to `gpu_name` if given)."""
    data = json.loads((MACHINES / f"{name}.json").read_text())
    data["gpus"] = data["gpus"][:count]
    for gpu in data["gpus"]:
        gpu["name"] = gpu_name or gpu["name"]
        if gpu_name and "V100" in gpu_name:  # the probe's figure, unless the name alone is tested
            gpu["compute_capability"] = "7.0" if "Tesla" in gpu_name else None
    return HardwareProfile.from_json(json.dumps(data))


def serve(machine_name: str, model: str, engine: str | None = None, quant_given: bool = False):  # type: ignore[no-untyped-def]
    return plan_serving(load_catalog().resolve(model), machine(machine_name), None, engine, quant_given)


# machine, model, engine, quant, format
CASES = [
    ("server-8xh20", "deepseek-r1:671b", "sglang", "FP8", "safetensors"),
    ("server-8xh20", "deepseek-r1:70b", "vllm", "BF16", "safetensors"),
    ("server-8xh100-2s", "deepseek-r1:70b", "vllm", "BF16", "safetensors"),
    ("server-8xh100-2s", "deepseek-r1:7b", "vllm", "BF16", "safetensors"),
    # 689 GB of FP8 does not fit 8x 80 GB; the AWQ 4-bit checkpoint does, on vLLM
    ("server-8xh100-2s", "deepseek-r1:671b", "vllm", "AWQ", "safetensors"),
    # A100 has no FP8, and the 671B's publisher checkpoint is FP8: AWQ on vLLM (the classic 8x A100 setup)
    ("dgx-a100-8x", "deepseek-r1:671b", "vllm", "AWQ", "safetensors"),
    ("dgx-a100-8x", "deepseek-r1:32b", "vllm", "BF16", "safetensors"),
    ("workstation-2x4090-128gb", "deepseek-r1:70b", "llama.cpp", "Q4_K_M", "gguf"),
    ("workstation-2x4090-128gb", "deepseek-r1:671b-ud-iq1_s", "llama.cpp", "UD-IQ1_S", "gguf"),
    ("xeon-6454s-2s-4090d-1tb", "deepseek-r1:671b", "llama.cpp", "Q4_K_M", "gguf"),
    ("laptop-16gb", "deepseek-r1:7b", "llama.cpp", "Q4_K_M", "gguf"),
    ("mac-m2-ultra-192gb", "deepseek-r1:70b", "llama.cpp", "Q4_K_M", "gguf"),
]


@pytest.mark.parametrize(("machine_name", "model", "engine", "quant", "fmt"), CASES)
def test_engine_and_weights_per_machine(
    machine_name: str, model: str, engine: str, quant: str, fmt: str
) -> None:
    plan = serve(machine_name, model)
    assert (plan.engine, plan.quant, plan.format) == (engine, quant, fmt), plan.engine_reasons
    assert plan.fits and plan.decode_tokens_per_s > 0
    assert plan.engine_reasons and all(r.endswith(".") for r in plan.engine_reasons)


def test_each_choice_says_why() -> None:
    h20 = serve("server-8xh20", "deepseek-r1:671b")
    assert "data-center GPUs" in h20.engine_reasons[0] and "deepseek-ai/DeepSeek-R1" in h20.engine_reasons[1]
    assert h20.hf_repo == "deepseek-ai/DeepSeek-R1" and h20.tensor_parallel == 8
    h100 = serve("server-8xh100-2s", "deepseek-r1:671b")
    assert "The FP8 checkpoint needs" in h100.engine_reasons[1]
    assert "AWQ checkpoint wanzhenchn/DeepSeek-R1-AWQ" in h100.engine_reasons[-1]
    four = plan_serving(load_catalog().resolve("deepseek-r1:671b"), gpus_kept("server-8xh100-2s", 4))
    assert (four.engine, four.quant) == ("llama.cpp", "Q4_K_M")
    assert "The FP8 checkpoint needs" in four.engine_reasons[1]
    assert (
        "The AWQ checkpoint needs" in four.engine_reasons[-1]
        and "bendi cluster plan deepseek-r1:671b --nodes 2" in four.engine_reasons[-1]
    )
    a100 = serve("dgx-a100-8x", "deepseek-r1:671b")
    assert "no FP8 support" in a100.engine_reasons[1] and "AWQ" in a100.engine_reasons[-1]
    consumer = serve("workstation-2x4090-128gb", "deepseek-r1:70b")
    assert "consumer GPU" in consumer.engine_reasons[0]
    assert "No GPU" in serve("laptop-16gb", "deepseek-r1:7b").engine_reasons[0]
    assert "Apple GPU" in serve("mac-m2-ultra-192gb", "deepseek-r1:70b").engine_reasons[0]
    assert gpu_class(machine("server-8xh20"))[0] == "datacenter"


def test_asked_for_quant_or_engine_wins() -> None:
    q4 = serve("server-8xh20", "deepseek-r1:671b-q4_k_m", quant_given=True)
    assert (q4.engine, q4.quant) == ("llama.cpp", "Q4_K_M") and "was asked for" in q4.engine_reasons[0]
    forced = serve("server-8xh20", "deepseek-r1:671b", engine="llama.cpp")
    assert (forced.engine, forced.quant) == ("llama.cpp", "Q4_K_M")
    vllm = serve("server-8xh20", "deepseek-r1:671b", engine="vllm")
    assert (vllm.engine, vllm.quant) == ("vllm", "FP8")
    distill_on_4090 = serve("workstation-2x4090-128gb", "deepseek-r1:14b", engine="vllm")
    assert (distill_on_4090.engine, distill_on_4090.quant, distill_on_4090.fits) == ("vllm", "BF16", True)
    # 141 GB of BF16 cannot fit one 80 GB A100; the 70B's AWQ checkpoint can
    one_a100 = plan_serving(load_catalog().resolve("deepseek-r1:70b"), gpus_kept("dgx-a100-8x", 1))
    assert (one_a100.engine, one_a100.quant, one_a100.fits) == ("vllm", "AWQ", True), one_a100.engine_reasons
    assert "The BF16 checkpoint needs" in one_a100.engine_reasons[1]
    # On 2x 24 GB even AWQ's 40 GB leaves too little: forced vLLM says so
    on_4090 = serve("workstation-2x4090-128gb", "deepseek-r1:70b", engine="vllm")
    assert (on_4090.quant, on_4090.fits) == (
        "AWQ",
        False,
    ) and "BF16 checkpoint needs" in on_4090.engine_reasons[1]
    awq = serve("server-8xh20", "deepseek-r1:70b-awq", quant_given=True)
    assert (awq.engine, awq.quant, awq.hf_repo) == (
        "vllm",
        "AWQ",
        "casperhansen/deepseek-r1-distill-llama-70b-awq",
    )


def test_volta_gpus_are_not_given_awq() -> None:
    from bendi.catalog.engine_choice import usable_checkpoints

    v100 = gpus_kept("dgx-a100-8x", 8, "Tesla V100-SXM2-32GB")
    usable, skipped = usable_checkpoints(load_catalog().resolve("deepseek-r1:70b"), v100)
    assert [c.facts.quant for c in usable] == ["BF16"] and "AWQ" in skipped[0]
    typed = gpus_kept("dgx-a100-8x", 8, "NVIDIA V100")  # no probed figure (`--gpu`): the table says Volta
    assert [
        c.facts.quant for c in usable_checkpoints(load_catalog().resolve("deepseek-r1:70b"), typed)[0]
    ] == ["BF16"]
    a100 = gpus_kept("dgx-a100-8x", 8)
    assert "AWQ" in [
        c.facts.quant for c in usable_checkpoints(load_catalog().resolve("deepseek-r1:70b"), a100)[0]
    ]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_plan_json_has_engine_quant_and_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "plan", "deepseek-r1:671b", "--gpu", "8xH20", "--ram", "1024", "--json")
    data = json.loads(out)
    assert code == 0 and (data["engine"], data["quant"], data["format"]) == ("sglang", "FP8", "safetensors")
    argv = data["command"]
    assert argv[:3] == ["python3", "-m", "sglang.launch_server"]
    assert argv[argv.index("--model-path") + 1] == "deepseek-ai/DeepSeek-R1"
    assert argv[argv.index("--tp") + 1] == "8" and argv[argv.index("--host") + 1] == "127.0.0.1"
    assert "--trust-remote-code" not in argv and data["command_line"].startswith("python3 -m sglang")
    assert data["engine_reasons"] and data["decode_tokens_per_s"] > 50  # the issue's ~84 tok/s, not ~29
    code, out = run(
        capsys, "plan", "deepseek-r1:671b", "--gpu", "8xH20", "--ram", "1024", "--quant", "Q4_K_M", "--json"
    )
    data = json.loads(out)
    assert (data["engine"], data["quant"]) == ("llama.cpp", "Q4_K_M")
    assert data["command"] == [
        "bendi",
        "serve",
        "--engine",
        "llama.cpp",
        "--model",
        "deepseek-r1:671b-q4_K_M",
    ]
    code, out = run(capsys, "plan", "deepseek-r1:70b", "--gpu", "2xH100", "--ram", "512", "--json")
    data = json.loads(out)
    assert (data["engine"], data["quant"]) == ("vllm", "BF16")
    assert data["command"][:3] == ["vllm", "serve", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"]
    assert data["command"][data["command"].index("--tensor-parallel-size") + 1] == "2"


def test_plan_text_shows_reasons_breakdown_and_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "plan", "deepseek-r1:671b", "--gpu", "RTX 4090", "--ram", "1024",
                    "--ram-bandwidth", "614.4", "--sockets", "2")  # fmt: skip
    assert code == 0 and "Why llama.cpp:" in out and "consumer GPU" in out
    assert "Decode is limited by ram" in out and "one socket of 2" in out
    assert "Command: numactl --cpunodebind=0 --membind=0 bendi serve" in out and "-ot exps=CPU" in out


def test_plan_json_with_sockets_reports_engine_quant_and_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(
        capsys, "plan", "deepseek-r1:671b", "--gpu", "8xH20", "--ram", "1024", "--sockets", "2", "--json"
    )
    data = json.loads(out)
    assert code == 0 and (data["engine"], data["quant"], data["sockets"]) == ("sglang", "FP8", 2)
    assert data["command"][:3] == ["python3", "-m", "sglang.launch_server"]
    assert data["serve_command"] == ["bendi", "serve", "--engine", "sglang", "--model", data["model"]]
    assert data["installed"] is None  # a described machine: nothing is said about what is installed here


def test_plan_says_what_bendi_serve_would_run_with_what_is_installed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bendi.core.settings import Settings
    from bendi.store.store import Store

    monkeypatch.setenv("BENDI_HOME", str(tmp_path))
    Store(Settings(home=tmp_path)).import_file(smollm2_path, name="deepseek-r1:7b-q4_K_M", link=True)
    code, out = run(capsys, "plan", "deepseek-r1:7b", "--json")
    here = json.loads(out)["installed"]
    assert (here["model"], here["engine"]) == ("deepseek-r1:7b-q4_K_M", "llama.cpp")
    assert here["reason"] and here["serve_command"][-1] == "deepseek-r1:7b-q4_K_M"
    code, out = run(capsys, "plan", "deepseek-r1:7b")
    assert "Installed here: bendi serve would run deepseek-r1:7b-q4_K_M on llama.cpp." in out
    code, out = run(capsys, "plan", "deepseek-r1:14b", "--json")
    assert json.loads(out)["installed"] is None  # not installed: nothing to say


def test_the_plan_route_reports_what_bendi_plan_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastapi.testclient import TestClient

    from bendi.core.settings import load_settings
    from bendi.gateway.app import create_app
    from bendi.services import build_services

    app = create_app(build_services(load_settings(home=tmp_path, threads=2)))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        served = client.get("/v1/plan", params={"model": "deepseek-r1:7b"}).json()
    code, out = run(capsys, "plan", "deepseek-r1:7b", "--json")
    planned = json.loads(out)
    for key in ("engine", "quant", "format", "command", "command_line", "serve_command", "engine_reasons"):
        assert served[key] == planned[key], key
    for key in ("draft", "command", "speedup"):  # the memory left free moves between two probes
        assert served["draft_model"][key] == planned["draft_model"][key], key
    assert served["draft_model"]["draft"] == "deepseek-r1:1.5b"
    assert served["command"]
