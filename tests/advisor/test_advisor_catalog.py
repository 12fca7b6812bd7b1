"""The catalog: every family validates, names resolve like Ollama's, bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from bendi.catalog.catalog import CatalogError, load_catalog, parse_family
from bendi.core.errors import ModelNotFoundError

FAMILIES = Path(__file__).resolve().parents[2] / "src/bendi/catalog/families"


@pytest.mark.parametrize(
    ("name", "canonical", "quant"),
    [
        ("deepseek-r1:7b", "deepseek-r1:7b-q4_K_M", "Q4_K_M"),
        ("deepseek-r1", "deepseek-r1:7b-q4_K_M", "Q4_K_M"),
        ("deepseek-r1:latest", "deepseek-r1:7b-q4_K_M", "Q4_K_M"),
        ("deepseek-r1:70b-q8_0", "deepseek-r1:70b-q8_0", "Q8_0"),
        ("DeepSeek-R1:70B-Q8_0", "deepseek-r1:70b-q8_0", "Q8_0"),
        ("deepseek-r1:671b-ud-iq1_s", "deepseek-r1:671b-ud-iq1_s", "UD-IQ1_S"),
        ("deepseek-r1:8b-llama-distill-q8_0", "deepseek-r1:8b-llama-distill-q8_0", "Q8_0"),
        ("deepseek-r1:1.5b-qwen-distill-q8_0", "deepseek-r1:1.5b-q8_0", "Q8_0"),
        ("smollm2:135m", "smollm2:135m-q4_1", "Q4_1"),
        ("deepseek-v3:671b", "deepseek-v3:671b-q4_K_M", "Q4_K_M"),
    ],
)
def test_resolve_ollama_style_names(name: str, canonical: str, quant: str) -> None:
    variant = load_catalog().resolve(name)
    assert (variant.name, variant.quant) == (canonical, quant)


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        load_catalog().resolve("deepseek-r1:7bb")
    assert "deepseek-r1:7b" in info.value.message
    with pytest.raises(ModelNotFoundError):
        load_catalog().resolve("deepseek-r1:7b-q9_9")


def test_every_variant_is_complete_and_split_parts_are_ordered() -> None:
    variants = load_catalog().variants()
    assert len({v.name for v in variants}) == len(variants)
    for v in variants:
        assert v.files and sum(f.size_bytes for f in v.files) == v.file_bytes
        assert v.hf_repo
        a = v.architecture
        assert a.n_head % a.n_head_kv == 0 and a.max_context_tokens >= 8192
    parts = load_catalog().resolve("deepseek-r1:671b-ud-iq1_s").files
    assert [f.path_in_repo for f in parts] == [
        f"DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-0000{i}-of-00003.gguf" for i in (1, 2, 3)
    ]
    r1 = load_catalog().resolve("deepseek-r1:671b-q4_k_m").architecture
    assert (r1.kv_lora_rank, r1.qk_rope_head_dim, r1.n_expert, r1.n_expert_used, r1.active_params_b) == (
        512,
        64,
        256,
        8,
        37.0,
    )


def test_issue_families_are_present() -> None:
    tags = {(v.family, v.tag) for v in load_catalog().variants()}
    for tag in ("1.5b", "7b", "8b", "8b-llama-distill", "14b", "32b", "70b", "671b"):
        assert ("deepseek-r1", tag) in tags
    assert ("deepseek-v3", "671b") in tags
    fp8 = load_catalog().resolve("deepseek-r1:671b-fp8")
    assert fp8.format == "safetensors" and fp8.hf_repo == "deepseek-ai/DeepSeek-R1"


def test_bundled_entry_matches_the_real_file(smollm2_path: Path) -> None:
    variant = load_catalog().resolve("smollm2:135m")
    assert variant.files[0].path_in_repo == smollm2_path.name
    assert variant.file_bytes == smollm2_path.stat().st_size


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (lambda t: t.replace("n_head_kv = 4,", "n_head_kv = 5,"), "n_head_kv"),
        (lambda t: t.replace('default_tag = "7b"', 'default_tag = "9b"'), "default_tag"),
        (lambda t: t.replace("n_layers = 28,", "n_layers = -1,", 1), "n_layers"),
        (lambda t: t + "\nunexpected = 1\n", "unexpected"),
        (lambda t: t.replace("[models.", "[[models.", 1), "TOML"),
    ],
)
def test_bad_family_file_is_a_clear_error(edit: object, complaint: str) -> None:
    text = (FAMILIES / "deepseek-r1.toml").read_text()
    assert callable(edit)
    with pytest.raises(CatalogError) as info:
        parse_family(edit(text), "deepseek-r1.toml")
    assert "deepseek-r1.toml" in info.value.message and complaint in info.value.message
