"""Memory estimates against the reference's derived values and llama.cpp's own buffer logs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bendi.catalog.catalog import load_catalog
from bendi.catalog.estimate import (
    ModelFacts,
    compute_buffer_bytes,
    kv_bytes_per_token,
    llamacpp_memory,
    model_facts_from_gguf,
    sharded_memory,
)
from bendi.store.gguf import read_gguf

MIB = 2**20
GIB = 2**30


def facts(name: str) -> ModelFacts:
    return ModelFacts.from_variant(load_catalog().resolve(name))


@pytest.mark.parametrize(
    ("name", "bytes_per_token"),
    [  # reference D.1, f16 K and V
        ("deepseek-r1:1.5b", 28_672),
        ("deepseek-r1:7b", 57_344),
        ("deepseek-r1:8b-llama-distill", 131_072),
        ("deepseek-r1:14b", 196_608),
        ("deepseek-r1:32b", 262_144),
        ("deepseek-r1:70b", 327_680),
        ("smollm2:135m", 23_040),
    ],
)
def test_gqa_kv_cache_per_token(name: str, bytes_per_token: int) -> None:
    assert kv_bytes_per_token(facts(name).architecture) == bytes_per_token


def test_block_quantised_cache_uses_llamacpp_block_sizes() -> None:
    arch = facts("deepseek-r1:70b").architecture
    assert kv_bytes_per_token(arch, "q8_0", "q8_0") == pytest.approx(327_680 * 34 / 32 / 2)
    assert kv_bytes_per_token(arch, "q4_0", "q4_0") == pytest.approx(327_680 * 18 / 32 / 2)


def test_mla_latent_cache_matches_ik_llama_log() -> None:
    arch = facts("deepseek-r1:671b-q4_k_m").architecture
    # ik_llama.cpp PR #259: "KV self size = 1166.62 MiB" at 32768 tokens with a q8_0 latent cache.
    assert kv_bytes_per_token(arch, "q8_0") * 32768 / MIB == pytest.approx(1166.62, abs=0.01)
    # Without MLA (old GGUFs, MLX) the cache is ~70x larger: 4.77 MiB per token (reference D.2).
    assert kv_bytes_per_token(arch, mla_latent=False) == 4_997_120
    # The graph buffer at 32K: 8470 MiB logged on CUDA.
    assert compute_buffer_bytes(arch, 32768) / MIB == pytest.approx(8470, rel=0.05)


def test_partial_offload_moves_layers_between_devices() -> None:
    f = facts("deepseek-r1:70b")
    cpu_only = llamacpp_memory(f, 4096)
    split = llamacpp_memory(f, 4096, gpu_layers=40, gpu_capacity_bytes=(24 * GIB,))
    cpu, gpu = split.devices
    assert gpu.weights_bytes == pytest.approx(f.layer_bytes * 40, rel=0.01)
    assert cpu.weights_bytes + gpu.weights_bytes == pytest.approx(cpu_only.weights_bytes, rel=0.01)
    assert cpu.kv_cache_bytes == gpu.kv_cache_bytes  # half the layers each
    two = llamacpp_memory(f, 4096, gpu_layers=80, gpu_capacity_bytes=(24 * GIB, 24 * GIB))
    assert abs(two.devices[1].weights_bytes - two.devices[2].weights_bytes) < f.output_bytes + f.layer_bytes


def test_vllm_sharding_splits_weights_and_replicates_mla_cache() -> None:
    f = facts("deepseek-r1:671b-fp8")
    tp8 = sharded_memory(f, 8192, 8, 1, 96 * GIB)
    assert len(tp8.devices) == 8
    assert tp8.devices[0].weights_bytes == f.weights_bytes // 8
    assert tp8.devices[0].kv_cache_bytes == int(kv_bytes_per_token(f.architecture) * 8192)
    pp2 = sharded_memory(f, 8192, 8, 2, 80 * GIB)
    assert len(pp2.devices) == 16 and pp2.devices[0].weights_bytes == f.weights_bytes // 16


def test_facts_from_the_bundled_gguf_header(smollm2_path: Path) -> None:
    info = read_gguf(smollm2_path)
    from_header = model_facts_from_gguf(
        info.metadata,
        smollm2_path.stat().st_size,
        "smollm2",
        params=info.parameter_count,
        tied_embeddings=True,
    )
    from_catalog = facts("smollm2:135m")
    assert from_header.architecture.n_layers == 30
    assert kv_bytes_per_token(from_header.architecture) == kv_bytes_per_token(from_catalog.architecture)
    assert llamacpp_memory(from_header, 2048).total_bytes == pytest.approx(
        llamacpp_memory(from_catalog, 2048).total_bytes, rel=0.02
    )


def test_estimate_matches_llamacpp_buffer_log(smollm2_path: Path) -> None:
    """Load the real model once and compare with the sizes llama.cpp itself logs."""
    code = (
        "import sys; from llama_cpp import Llama; "
        "Llama(model_path=sys.argv[1], n_ctx=4096, n_threads=1, n_batch=512, verbose=True)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(smollm2_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    kv_mib = float(re.search(r"CPU KV buffer size =\s*([\d.]+) MiB", out.stderr).group(1))  # type: ignore[union-attr]
    compute_mib = float(re.search(r"CPU compute buffer size =\s*([\d.]+) MiB", out.stderr).group(1))  # type: ignore[union-attr]
    f = facts("smollm2:135m")
    assert kv_bytes_per_token(f.architecture) * 4096 / MIB == pytest.approx(kv_mib, rel=0.001)
    assert compute_buffer_bytes(f.architecture, 4096) / MIB == pytest.approx(compute_mib, rel=0.03)
