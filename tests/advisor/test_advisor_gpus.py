"""GPU names as users and nvidia-smi spell them."""

from __future__ import annotations

import pytest

from bendi.catalog.gpus import find_gpu_spec, parse_gpu_request, ram_bandwidth_gbps
from bendi.core.errors import UserInputError


@pytest.mark.parametrize(
    ("text", "key", "count"),
    [
        ("RTX 4090", "RTX 4090", 1),
        ("4090", "RTX 4090", 1),
        ("rtx4090", "RTX 4090", 1),
        ("RTX 4090x2", "RTX 4090", 2),
        ("2x4090", "RTX 4090", 2),
        ("RTX 4090 ×2", "RTX 4090", 2),
        ("A100-80GB", "A100 80GB", 1),
        ("A100 40GB", "A100 40GB", 1),
        ("H20", "H20", 1),
        ("8xH20", "H20", 8),
        ("H20x8", "H20", 8),
        ("M2 Ultra", "M2 Ultra", 1),
        ("Ascend 910B", "Ascend 910B", 1),
        ("910B x16", "Ascend 910B", 16),
        ("RTX 4060", "RTX 4060", 1),
        ("3090 Ti", "RTX 3090 Ti", 1),
    ],
)
def test_user_spellings(text: str, key: str, count: int) -> None:
    spec, n = parse_gpu_request(text)
    assert (spec.key, n) == (key, count)


@pytest.mark.parametrize(
    ("smi_name", "key"),
    [
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
        ("NVIDIA A100-SXM4-80GB", "A100 80GB"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H20", "H20"),
        ("NVIDIA GeForce RTX 3090", "RTX 3090"),
    ],
)
def test_nvidia_smi_product_names(smi_name: str, key: str) -> None:
    spec = find_gpu_spec(smi_name)
    assert spec is not None and spec.key == key


def test_unknown_gpu_is_a_helpful_error() -> None:
    with pytest.raises(UserInputError) as info:
        parse_gpu_request("Voodoo 3")
    assert "RTX 4090" in info.value.message


def test_gpu_memory_is_binary_and_apple_is_decimal() -> None:
    spec, _ = parse_gpu_request("4090")
    assert spec.memory_bytes == 24 * 2**30  # nvidia-smi: 24564 MiB
    apple, _ = parse_gpu_request("M2 Ultra")
    assert apple.memory_bytes == 192 * 10**9


def test_ram_bandwidth() -> None:
    assert ram_bandwidth_gbps("DDR5-5600") == pytest.approx(89.6)
    assert ram_bandwidth_gbps("ddr5-4800", channels=12) == pytest.approx(460.8)
    with pytest.raises(UserInputError):
        ram_bandwidth_gbps("DDR9-1")
