"""Draft models in `bendi plan`: the catalog's tokenizer pairs, the memory of both, the speed-up model,
and what the command prints (real catalog, real planner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bendi.catalog.catalog import CatalogError, load_catalog, parse_family
from bendi.catalog.draft_pairing import DraftAdvice, advise_draft, pick_draft
from bendi.catalog.draft_speedup import expected_tokens, speedup, speedup_range
from bendi.catalog.engine_choice import plan_serving
from bendi.catalog.estimate import kv_bytes_per_token
from bendi.catalog.machines import describe_machine
from bendi.cli.main import main

FAMILIES = Path(__file__).resolve().parents[2] / "src/bendi/catalog/families"


def advice(model: str, gpu: str | None, ram_gb: float, ctx: int | None = None) -> DraftAdvice:
    plan = plan_serving(load_catalog().resolve(model), describe_machine(gpu, ram_gb), ctx)
    assert plan.fits, plan.reason
    found = advise_draft(plan)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("target", "draft"),
    [
        ("deepseek-r1:32b", "deepseek-r1:1.5b-q4_K_M"),
        ("deepseek-r1:14b", "deepseek-r1:1.5b-q4_K_M"),
        ("deepseek-r1:7b", "deepseek-r1:1.5b-q4_K_M"),  # 1.78 B <= 7.62 / 4
        ("deepseek-r1:32b-q8_0", "deepseek-r1:1.5b-q4_K_M"),  # the draft's quant is its own
        ("deepseek-r1:70b", "deepseek-r1:8b-llama-distill-q4_K_M"),
        ("deepseek-r1:1.5b", None),  # nothing smaller
        ("deepseek-r1:8b-llama-distill", None),  # the 70B is the other Llama distill
        ("deepseek-r1:8b", None),  # the 0528 Qwen3: no tokenizer partner
        ("deepseek-r1:671b", None),
        ("smollm2:135m", None),
    ],
)
def test_the_draft_is_the_smallest_same_tokenizer_model_a_quarter_the_size(
    target: str, draft: str | None
) -> None:
    catalog = load_catalog()
    found = pick_draft(catalog.resolve(target), catalog)
    assert (found.name if found else None) == draft


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (
            lambda t: t.replace('tokenizer = "deepseek-r1-distill-qwen2.5"', 'tokenizer = "Qwen 2.5"', 1),
            "tokenizer",
        ),
        # the Qwen3 8B (151,936 tokens) cannot share the Llama distills' tokenizer (128,256)
        (
            lambda t: t.replace(
                'aliases = ["8b-0528-qwen3"]',
                'aliases = ["8b-0528-qwen3"]\ntokenizer = "deepseek-r1-distill-llama3"',
            ),
            "padding rows",
        ),
    ],
)
def test_the_tokenizer_field_is_validated(edit: object, complaint: str) -> None:
    assert callable(edit)
    text = (FAMILIES / "deepseek-r1.toml").read_text()
    with pytest.raises(CatalogError) as info:
        parse_family(edit(text), "deepseek-r1.toml")
    assert complaint in info.value.message


def test_32b_on_a_4090_gets_the_15b_with_its_memory_counted() -> None:
    found = advice("deepseek-r1:32b", "RTX 4090", 64)
    assert found.recommended and found.draft is not None and found.memory and found.speedup
    assert found.draft_name == "deepseek-r1:1.5b"
    k = found.speedup.proposed_tokens
    assert found.command == (f"BENDI_SPECULATIVE_TOKENS={k}", "bendi", "serve", "--model", "deepseek-r1:32b",
                             "--draft", "deepseek-r1:1.5b")  # fmt: skip
    assert k < 8  # the advised proposal length is what bendi will use (its default is 8)
    memory, draft = found.memory, found.draft
    kv = kv_bytes_per_token(draft.architecture) * 4096
    assert memory.weights_bytes == pytest.approx(draft.file_bytes, rel=0.01)
    assert memory.kv_cache_bytes == pytest.approx(kv, rel=0.01)
    assert memory.extra_bytes > draft.file_bytes + kv  # plus its compute buffers
    # Counted against what the 32B leaves on the GPU, where bendi puts the draft's layers too.
    plan = plan_serving(load_catalog().resolve("deepseek-r1:32b"), describe_machine("RTX 4090", 64))
    gpu = next(d for d in plan.devices if d.device == "gpu0")
    assert memory.main.device == "gpu0" and memory.main.free_bytes == gpu.capacity_bytes - gpu.total_bytes
    assert memory.fits
    speed = found.speedup
    assert speed.cost_ratio == pytest.approx(1.12 / 19.9, rel=0.01)
    assert speed.high > speed.low > 1.0 and speed.high > 2.0  # ~2x, as ubicloud measured for this pair
    assert 3 <= speed.proposed_tokens <= 5


def test_7b_gets_a_smaller_speedup_than_32b() -> None:
    small = advice("deepseek-r1:7b", "RTX 4090", 64).speedup
    large = advice("deepseek-r1:32b", "RTX 4090", 64).speedup
    assert small is not None and large is not None
    assert small.cost_ratio == pytest.approx(0.24, abs=0.01)
    assert small.high < large.high and small.low < large.low
    assert small.proposed_tokens < large.proposed_tokens  # a costlier draft guesses fewer tokens
    assert 1.0 < small.low < 1.3 and small.high < 1.6  # still pays, by 1.2-1.5x


@pytest.mark.parametrize(("model", "ram_gb"), [("deepseek-r1:1.5b", 16), ("deepseek-r1:671b", 1024)])
def test_no_draft_without_a_partner(model: str, ram_gb: float) -> None:
    found = advice(model, None, ram_gb)
    assert not found.recommended and found.draft is None and not found.command
    assert "same tokenizer" in found.reason


@pytest.mark.parametrize(
    ("model", "gpu", "ram_gb", "where"),
    [
        ("deepseek-r1:32b", None, 24, "1.5 GB more RAM"),  # 21.6 GB of 21.9 GB usable
        ("deepseek-r1:32b-q5_K_M", "RTX 4090", 64, "1.4 GB more GPU memory (gpu0)"),  # 0.8 GB left on it
    ],
)
def test_too_little_free_memory_for_both_is_one_sentence(
    model: str, gpu: str | None, ram_gb: float, where: str
) -> None:
    found = advice(model, gpu, ram_gb)
    assert not found.recommended and not found.command
    assert found.memory is not None and not found.memory.fits
    assert found.reason.startswith(f"The draft model deepseek-r1:1.5b would need {where}")
    assert "does not fit" in found.reason and found.reason.count(". ") == 0


def test_a_vllm_plan_gets_no_llamacpp_draft() -> None:
    found = advice("deepseek-r1:70b", "2xH100", 256)
    assert not found.recommended and found.draft is None and found.memory is None and not found.command
    assert "vLLM" in found.reason


def test_a_plan_that_does_not_fit_has_no_draft_section() -> None:
    plan = plan_serving(load_catalog().resolve("deepseek-r1:70b"), describe_machine(None, 16))
    assert not plan.fits and advise_draft(plan) is None


def test_the_speedup_model() -> None:
    assert expected_tokens(0.5, 1) == 1.5 and expected_tokens(1.0, 4) == 5.0
    assert expected_tokens(0.6, 3) == pytest.approx(1 + 0.6 + 0.36 + 0.216)
    assert speedup(0.7, 4, 0.0) == pytest.approx(expected_tokens(0.7, 4))  # a free draft
    assert speedup(0.5, 2, 0.25) == pytest.approx(1.75 / 1.5)
    # A CPU that prefills at only twice its decode speed pays for verifying 4 tokens: 4 x 0.5 = 2 decodes.
    assert speedup(0.6, 3, 0.05, batch_token_cost=0.5) == pytest.approx(expected_tokens(0.6, 3) / 2.15)
    assert speedup_range(0.05, batch_token_cost=0.5).proposed_tokens == 1
    # At 50% acceptance a draft costing more than half a target decode never pays (k = 1: 1.5 / (1 + c)).
    assert not speedup_range(0.6).pays and speedup_range(0.5).pays and speedup_range(0.05).pays


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_plan_prints_the_draft_section_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "plan", "deepseek-r1:32b", "--gpu", "RTX 4090", "--ram", "64")
    assert code == 0 and "Draft model" in out
    assert "BENDI_SPECULATIVE_TOKENS=4 bendi serve --model deepseek-r1:32b --draft deepseek-r1:1.5b" in out
    assert "extra memory  1.6 GB" in out and "guessing 4 tokens ahead" in out and "50% to 70%" in out
    code, out = run(capsys, "plan", "deepseek-r1:32b", "--gpu", "RTX 4090", "--ram", "64", "--json")
    draft = json.loads(out)["draft_model"]
    assert draft["recommended"] and draft["draft"] == "deepseek-r1:1.5b"
    assert draft["command_line"] == (
        "BENDI_SPECULATIVE_TOKENS=4 bendi serve --model deepseek-r1:32b --draft deepseek-r1:1.5b"
    )
    assert draft["memory"]["fits"] and draft["memory"]["extra_bytes"] > 1.12e9
    assert draft["speedup"]["acceptance_low"] == 0.5 and draft["speedup"]["speedup_high"] > 2.0
    code, out = run(capsys, "plan", "deepseek-r1:70b", "--gpu", "2xH100", "--ram", "256", "--json")
    assert json.loads(out)["draft_model"]["draft"] is None
    code, out = run(capsys, "plan", "deepseek-r1:32b-q5_K_M", "--gpu", "RTX 4090", "--ram", "64")
    assert code == 0 and "Draft model: not recommended. The draft model deepseek-r1:1.5b would need" in out
    assert "--draft" not in out
