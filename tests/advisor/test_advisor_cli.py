"""`bendi doctor` and `bendi plan` through the real argument parser."""

from __future__ import annotations

import json

import pytest

from bendi.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_doctor_json(capsys: pytest.CaptureFixture[str], bendi_home: object) -> None:
    code, out = run(capsys, "doctor", "--json")
    data = json.loads(out)
    assert code == 0
    assert {"hardware", "recommended", "problems", "llama_cpp"} <= set(data)
    assert data["hardware"]["ram_total_bytes"] > 0 and isinstance(data["problems"], list)
    assert data["llama_cpp"]["version"].startswith("0.") and data["llama_cpp"]["paired_q4_1_dot"] in (
        True,
        False,
    )


def test_doctor_tables(capsys: pytest.CaptureFixture[str], bendi_home: object) -> None:
    code, out = run(capsys, "doctor")
    assert code == 0 and "RAM" in out and "GB" in out and "llama.cpp" in out


def test_plan_one_model_for_a_described_machine(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "plan", "deepseek-r1:70b", "--gpu", "RTX 4090x2", "--ram", "64", "--json")
    data = json.loads(out)
    assert code == 0 and data["fits"] and data["engine"] == "llama.cpp" and data["gpu_layers"] == 80
    assert data["model"] == "deepseek-r1:70b-q4_K_M" and data["context_tokens"] == 4096


def test_plan_quant_and_ctx_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(
        capsys, "plan", "deepseek-r1:7b", "--quant", "Q8_0", "--ctx", "8192", "--ram", "16", "--json"
    )
    data = json.loads(out)
    assert (data["quant"], data["context_tokens"]) == ("Q8_0", 8192)


def test_plan_that_does_not_fit_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "plan", "deepseek-r1:671b", "--ram", "16", "--json")
    assert code == 2 and json.loads(out)["fits"] is False


def test_plan_ranking_and_hardware_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "plan", "--gpu", "8xH20", "--ram", "1024", "--json")
    data = json.loads(out)
    assert code == 0 and data["plans"][0]["model"].startswith("deepseek-r1:671b")
    code, out = run(capsys, "plan", "deepseek-r1:671b", "--hardware-options", "--json")
    assert code == 0 and any(o["engine"] == "sglang" for o in json.loads(out)["options"])
    code, out = run(capsys, "plan", "deepseek-r1:671b", "--hardware-options")
    assert code == 0 and "H20" in out


def test_plan_bad_input_is_a_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "deepseek-r1:7b", "--gpu", "Voodoo 3", "--ram", "8"]) == 1
    assert "Unknown GPU" in capsys.readouterr().err
    assert main(["plan", "deepseek-r1:9000b"]) == 1
