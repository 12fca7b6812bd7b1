"""HF-format models on disk: `bendi import DIR`, list/show/rm, manifest versions, catalog plans."""

from __future__ import annotations

import json

import pytest
from fakehub import FakeHub
from fastapi.testclient import TestClient
from hfmaker import SHARDS, serve_folder, write_hf_model

from bendi.cli.main import main
from bendi.core.errors import InvalidModelFileError, ModelNotFoundError, UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import load_settings
from bendi.gateway.app import create_app
from bendi.services import build_services
from bendi.store.manifest import Layout, ManifestVersionError
from bendi.store.plan import plan_pull
from bendi.store.reference import parse_model_name
from bendi.store.resolve import resolve_model
from bendi.store.store import Store


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_a_folder_then_list_show_and_rm(bendi_home, tmp_path, capsys):
    folder = write_hf_model(tmp_path / "My-HF-Model")
    code, out, err = _run(capsys, "import", str(folder), "--name", "mine:v1")
    assert code == 0, err
    assert "pytorch_model.bin" in out and "modeling_evil.py" in out  # said what was skipped, and why
    paths = DataPaths(bendi_home)
    local = resolve_model(paths, "mine:v1")
    assert local.format == "hf" and (local.path / SHARDS[1]).read_bytes() == (folder / SHARDS[1]).read_bytes()
    assert not (local.path / "pytorch_model.bin").exists() and not (local.path / "modeling_evil.py").exists()
    assert not (local.path / "original").exists()

    code, out, _ = _run(capsys, "list", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "mine:v1")
    assert row["format"] == "hf" and row["quantization"] == "BFLOAT16" and row["parameter_count"] == 400_000
    code, out, err = _run(capsys, "show", "mine:v1")
    assert code == 0, err
    assert "Hugging Face" in out and "qwen2" in out and SHARDS[0] in out

    with TestClient(
        create_app(build_services(load_settings(home=bendi_home))), base_url="http://127.0.0.1"
    ) as client:
        tags = client.get("/api/tags").json()["models"]
    assert next(m for m in tags if m["name"] == "mine:v1")["details"]["format"] == "hf"  # not "gguf"

    blobs_before = set(paths.blobs.iterdir())
    assert len(blobs_before) == 8  # config, generation config, 2 tokenizer files, index, README, 2 shards
    assert _run(capsys, "rm", "mine:v1")[0] == 0
    assert not list(paths.blobs.iterdir()) and not (paths.model_views / "mine").exists()
    assert (folder / SHARDS[0]).is_file()  # the original folder is never touched


def test_import_link_shares_bytes_and_a_folder_imports_under_its_own_name(bendi_home, tmp_path, capsys):
    folder = write_hf_model(tmp_path / "Linked-Model", extras=False)
    code, _, err = _run(capsys, "import", str(folder), "--link")
    assert code == 0, err
    model = resolve_model(DataPaths(bendi_home), "linked-model")
    assert (model.path / SHARDS[0]).resolve().stat().st_nlink == 2


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("pickles", "no safetensors weights"),
        ("no-config", "no config.json"),
        ("bad-shard", "not a valid safetensors"),
        ("missing-shard", "not there"),
    ],
)
def test_import_refuses_a_broken_folder_before_copying(bendi_home, tmp_path, damage, message):
    folder = write_hf_model(tmp_path / "m", extras=damage == "pickles")
    if damage == "pickles":
        for shard in SHARDS:
            (folder / shard).unlink()
        (folder / "model.safetensors.index.json").unlink()
    elif damage == "no-config":
        (folder / "config.json").unlink()
    elif damage == "bad-shard":
        (folder / SHARDS[1]).write_bytes((folder / SHARDS[1]).read_bytes()[:-100])
    else:
        (folder / SHARDS[1]).unlink()
    store = Store(load_settings(home=bendi_home))
    with pytest.raises(InvalidModelFileError, match=message):
        store.import_dir(folder)
    assert not list(store.layout.paths.blobs.iterdir())


def test_a_version_1_manifest_still_reads_and_a_newer_one_is_refused_and_kept(bendi_home, tmp_path):
    store = Store(load_settings(home=bendi_home))
    installed = store.import_dir(write_hf_model(tmp_path / "hf", extras=False), name="hf")
    layout: Layout = store.layout
    old = {"name": "old", "tag": "latest", "files": [json.loads(json.dumps(
        {"file_name": "x.gguf", "digest": installed.manifest.files[0].digest,
         "size_bytes": installed.manifest.files[0].size_bytes}))], "source": {"kind": "import"},
        "gguf": {}, "created_s": 1.0, "verified": True}  # fmt: skip
    path = layout.manifest_path(parse_model_name("old"))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, **old}))
    assert layout.read(parse_model_name("old")).format == "gguf"
    path.write_text(json.dumps(old))  # the earliest manifests had no version key at all
    assert layout.read(parse_model_name("old")).format == "gguf"

    newer = layout.manifest_path(parse_model_name("future"))
    newer.parent.mkdir(parents=True)
    newer.write_text(
        json.dumps(
            {
                "version": 99,
                **old,
                "name": "future",
                "files": [
                    {"file_name": f.file_name, "digest": f.digest, "size_bytes": f.size_bytes}
                    for f in installed.manifest.files
                ],
            }
        )
    )
    with pytest.raises(ManifestVersionError, match="newer bendi.*version 99"):
        store.get("future")
    with pytest.raises(ManifestVersionError):
        store.remove("future")
    assert newer.is_file()
    store.remove("hf")  # the newer manifest's blobs are still in use: nothing it names is freed
    store.remove("old")
    assert all(layout.blob_path(f.digest).is_file() for f in installed.manifest.files)


def test_catalog_hf_plans_pick_bf16_for_distills_and_fp8_for_671b():
    plan = plan_pull("deepseek-r1:7b", model_format="hf")
    assert plan.format == "hf" and str(plan.name) == "deepseek-r1:7b-bf16"
    assert plan.repos["huggingface"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    names = {f.path_in_repo for f in plan.files}
    assert {"config.json", "tokenizer.json", "model.safetensors.index.json"} <= names
    shards = [f for f in plan.files if f.path_in_repo.endswith(".safetensors")]
    assert [f.path_in_repo for f in shards] == [
        "model-00001-of-000002.safetensors",
        "model-00002-of-000002.safetensors",
    ]
    assert all(f.sha256 for f in shards)
    assert plan_pull("deepseek-r1:7b-bf16").format == "hf"
    big = plan_pull("deepseek-r1:671b", model_format="hf")
    assert str(big.name) == "deepseek-r1:671b-fp8" and big.repos["huggingface"] == "deepseek-ai/DeepSeek-R1"
    assert sum(f.path_in_repo.endswith(".safetensors") for f in big.files) == 163
    exact = plan_pull("deepseek-r1:8b", model_format="hf")
    assert sum(f.size_bytes or 0 for f in exact.files) == 8_610_202_930 + 7_771_313_866
    with pytest.raises(ModelNotFoundError, match="GGUF quant"):
        plan_pull("deepseek-r1:7b-q8_0", model_format="hf")
    with pytest.raises(UserInputError, match="not a GGUF"):
        plan_pull("deepseek-r1:7b-bf16", model_format="gguf")
    with pytest.raises(UserInputError, match="whole repository"):
        plan_pull("hf:acme/Tiny/x.gguf", model_format="hf")
    assert plan_pull("hf:acme/Tiny").format == "hf"


def test_cli_pull_of_a_catalog_model_with_format_hf(bendi_home, tmp_path, capsys, monkeypatch):
    """`bendi pull deepseek-r1:8b-llama-distill --format hf` end to end against the fake hub."""
    folder = write_hf_model(tmp_path / "up", extras=True)
    renamed = {shard: f"model-0000{i}-of-000002.safetensors" for i, shard in enumerate(SHARDS, 1)}
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"] = {k: renamed[v] for k, v in index["weight_map"].items()}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    for old, new in renamed.items():
        (folder / old).rename(folder / new)
    with FakeHub() as hub:
        serve_folder(hub.state, "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", folder)
        for key, value in hub.settings_env().items():
            monkeypatch.setenv(key, value)
        code, out, err = _run(
            capsys, "pull", "deepseek-r1:8b-llama-distill", "--format", "hf", "--source", "huggingface"
        )
        assert code == 0, err
        assert "deepseek-r1:8b-llama-distill-bf16" in out and "verified" in out and "pytorch_model.bin" in out
    model = resolve_model(DataPaths(bendi_home), "deepseek-r1:8b-llama-distill-bf16")
    assert model.format == "hf" and (model.path / "model-00002-of-000002.safetensors").is_file()


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        (
            '{ quant = "BF16", format = "safetensors", parts = 2, shard_bytes = [1] }',
            "needs 2 positive sizes",
        ),
        (
            '{ quant = "BF16", size_gb = 1, format = "safetensors", parts = 2, shard_bytes = [1, 2] }',
            "already gives",
        ),
        (
            '{ quant = "BF16", size_gb = 1, format = "safetensors", parts = 1, shard_sha256 = ["ABC"] }',
            "SHA-256",
        ),
        ('{ quant = "Q4_0", size_gb = 1, shard_sha256 = ["' + "a" * 64 + '"] }', "are for safetensors"),
    ],
)
def test_catalog_safetensors_fields_are_validated(variant, message):
    from bendi.catalog.catalog import CatalogError, parse_family

    text = f"""
family = "t"
display_name = "T"
license = "MIT"
reasoning = false
default_tag = "1b"
source = "test"
[models."1b"]
display_name = "T 1B"
params_b = 1.0
hf_repo = "acme/t"
default_quant = "{"Q4_0" if "Q4_0" in variant else "BF16"}"
architecture = {{ arch = "llama", n_layers = 2, n_embd = 64, n_head = 4, n_head_kv = 4, head_dim_k = 16, head_dim_v = 16, n_ff = 128, vocab_size = 100, max_context_tokens = 512 }}
variants = [ {variant} ]
"""
    with pytest.raises(CatalogError, match=message):
        parse_family(text, "t.toml")
