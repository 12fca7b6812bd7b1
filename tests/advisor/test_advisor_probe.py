"""Probing this GPU-less machine, and GPUs from nvidia-smi XML and NVML-shaped fixtures."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from bendi.hardware.probe import gpus_from_nvml_records, parse_nvidia_smi_xml, probe
from bendi.hardware.profile import HardwareProfile

MIB = 2**20


def test_probe_this_machine_is_quick_and_round_trips() -> None:
    started = time.monotonic()
    profile = probe()
    assert time.monotonic() - started < 5  # generous; it takes ~0.1 s
    assert profile.ram_total_bytes > profile.ram_available_bytes > 0
    assert profile.cpu.logical_cores >= profile.cpu.physical_cores >= 1
    assert profile.cpu.model
    assert HardwareProfile.from_json(profile.to_json()) == profile
    if profile.cpu.architecture == "x86_64":
        assert set(profile.cpu.flags) <= {f for f in Path("/proc/cpuinfo").read_text().split()} | {"sse3"}


def test_two_rtx_4090_from_nvidia_smi_xml(advisor_fixtures: Path) -> None:
    gpus = parse_nvidia_smi_xml((advisor_fixtures / "nvidia-smi/workstation-2x4090.xml").read_text())
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 4090"] * 2
    assert gpus[0].memory_total_bytes == 24564 * MIB
    assert gpus[1].memory_free_bytes == 23030 * MIB  # the display server holds 1.2 GB on the second card
    assert {g.driver_version for g in gpus} == {"550.120"}
    assert gpus[0].compute_capability == "8.9"


def test_eight_h20_from_nvidia_smi_xml(advisor_fixtures: Path) -> None:
    gpus = parse_nvidia_smi_xml((advisor_fixtures / "nvidia-smi/server-8xh20.xml").read_text())
    assert len(gpus) == 8
    assert all(g.memory_total_bytes == 97871 * MIB and g.vendor == "nvidia" for g in gpus)


def test_nvml_shaped_records(advisor_fixtures: Path) -> None:
    data = json.loads((advisor_fixtures / "nvml/dgx-a100-2x.json").read_text())
    gpus = gpus_from_nvml_records(data["devices"], data["driver_version"])
    assert len(gpus) == 2
    assert gpus[0].compute_capability == "8.0"
    assert gpus[0].memory_total_bytes == 80 * 2**30


def test_probe_runs_nvidia_smi_found_on_path(
    advisor_fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real subprocess path, with a stand-in nvidia-smi that replays the recorded XML."""
    script = tmp_path / "nvidia-smi"
    xml = advisor_fixtures / "nvidia-smi/workstation-2x4090.xml"
    script.write_text(f"#!/bin/sh\ncat '{xml}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    profile = probe()
    assert len(profile.gpus) == 2
    assert profile.vram_total_bytes == 2 * 24564 * MIB


def test_broken_nvidia_smi_means_no_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver'\nexit 9\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert probe().gpus == ()


def test_amd_gpu_from_rocm_smi_json(advisor_fixtures: Path) -> None:
    from bendi.catalog.gpus import find_gpu_spec
    from bendi.hardware.probe import parse_rocm_smi_json

    gpus = parse_rocm_smi_json((advisor_fixtures / "rocm-smi/workstation-7900xtx.json").read_text())
    assert len(gpus) == 1 and gpus[0].vendor == "amd"
    assert gpus[0].memory_total_bytes == 25_753_026_560
    assert gpus[0].memory_free_bytes == 25_753_026_560 - 1_103_101_952
    spec = find_gpu_spec(gpus[0].name)
    assert spec is not None and spec.key == "RX 7900 XTX"
