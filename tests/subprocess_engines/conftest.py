"""Fixtures for the real vLLM tests: the vLLM venv (scripts/install_vllm.sh) and an HF-format test model."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from bendi.engines.server_install import default_vllm_env

HERE = Path(__file__).resolve().parent
MAKER = HERE / "make_hf_model.py"


def vllm_python_or_none() -> str | None:
    """BENDI_VLLM_PYTHON, else the venv scripts/install_vllm.sh makes by default, else None."""
    named = os.environ.get("BENDI_VLLM_PYTHON")
    if named:
        return named
    default = default_vllm_env() / "bin" / "python"
    return str(default) if default.is_file() else None


@pytest.fixture(scope="session")
def vllm_python() -> str:
    python = vllm_python_or_none()
    if python is None:
        pytest.skip(
            "vLLM is not installed: run `bash scripts/install_vllm.sh` (scripts/test does) or set "
            "BENDI_VLLM_PYTHON to a python with vLLM"
        )
    return python


def _cache_root() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "bendi" / "test-models"


@pytest.fixture(scope="session")
def hf_think_model(vllm_python: str, smollm2_path: Path) -> Path:
    """SmolLM2-135M as a Hugging Face-format directory (bf16 safetensors) with <think> tokens and a
    template that opens <think> for make_hf_model.THINK_SYSTEM. Made once per machine (~20-50 s) with
    transformers' GGUF loader in the vLLM venv, then cached under ~/.cache/bendi/test-models."""
    key = hashlib.sha256(
        MAKER.read_bytes() + f"{smollm2_path.name}:{smollm2_path.stat().st_size}".encode()
    ).hexdigest()[:12]
    out = _cache_root() / key / "smollm2-135m-think"
    if not (out / "config.json").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1")
        done = subprocess.run(
            [vllm_python, str(MAKER), str(smollm2_path), str(out), "--think"],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert done.returncode == 0, f"making the HF-format test model failed:\n{done.stderr[-3000:]}"
    return out
