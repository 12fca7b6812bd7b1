"""`bendi import/list/show/rm/pull/run` in process: sharing blobs, and hostile names through every command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ggufmaker import write_gguf

from bendi.cli.main import main
from bendi.core.errors import InvalidNameError
from bendi.core.paths import DataPaths
from bendi.store.reference import parse_digest, parse_hub_file, parse_model_name, split_parts


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_copy_and_link_share_one_blob_and_rm_frees_it_last(bendi_home, tmp_path, capsys):
    source = write_gguf(tmp_path / "My-Model.Q8_0.gguf", 200_000, seed=7)
    assert _run(capsys, "import", str(source), "--name", "second:v1", "--link")[0] == 0
    assert _run(capsys, "import", str(source))[0] == 0  # same bytes: no second copy
    paths = DataPaths(bendi_home)
    blobs = list(paths.blobs.iterdir())
    assert len(blobs) == 1 and blobs[0].read_bytes() == source.read_bytes()
    assert blobs[0].stat().st_nlink == 2  # --link: the store and the original share the bytes

    code, out, _ = _run(capsys, "list", "--json")
    names = {r["name"] for r in json.loads(out)}
    assert {"my-model.q8_0:latest", "second:v1"} <= names
    code, out, _ = _run(capsys, "list")
    assert "my-model.q8_0:latest" in out and "F32" in out

    code, out, _ = _run(capsys, "show", "second:v1")
    assert code == 0 and "llama" in out and "4096" in out

    assert _run(capsys, "rm", "my-model.q8_0")[0] == 0
    assert blobs[0].exists()  # still used by second:v1
    assert _run(capsys, "rm", "second:v1")[0] == 0
    assert not blobs[0].exists()
    assert source.exists()  # the original file is never touched
    code, _, err = _run(capsys, "rm", "second:v1")
    assert code == 1 and "not installed" in err


def test_import_refuses_pickles_and_broken_gguf(bendi_home, tmp_path, capsys):
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"\x80\x04K\x01.")
    code, _, err = _run(capsys, "import", str(pickle))
    assert code == 1 and "pickle" in err
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(write_gguf(tmp_path / "ok.gguf", 10_000).read_bytes()[:-500])
    code, _, err = _run(capsys, "import", str(broken))
    assert code == 1 and "truncated" in err
    assert not list(DataPaths(bendi_home).blobs.glob("*"))


def test_split_gguf_import_registers_all_parts(bendi_home, tmp_path, capsys):
    for index in (1, 2):
        write_gguf(tmp_path / f"Two-{index:05d}-of-00002.gguf", 50_000, split=(index - 1, 2), seed=index)
    code, out, err = _run(capsys, "import", str(tmp_path / "Two-00002-of-00002.gguf"))
    assert code == 0, err
    from bendi.store.resolve import resolve_model

    model = resolve_model(DataPaths(bendi_home), "two")
    assert model.path.name == "Two-00001-of-00002.gguf"
    assert (model.path.parent / "Two-00002-of-00002.gguf").is_file()


HOSTILE = [
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    "a/../../b",
    "evil\x00name",
    "ｄｅｅｐｓｅｅｋ",  # full-width look-alikes
    "deepseek\u202e",  # right-to-left override
    "x" * 600,
    "name:../../tag",
    "hf:../../x/y.gguf",
    "hf:owner/repo/../../../etc/passwd",
    "modelscope:owner/re po/f.gguf",
    "",
]


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_names_are_rejected_by_every_command(bendi_home, tmp_path, capsys, name):
    source = write_gguf(tmp_path / "ok.gguf", 10_000)
    before = sorted(p.name for p in tmp_path.iterdir())
    commands = [
        ["pull", name],
        ["show", name],
        ["rm", name],
        ["import", str(source), "--name", name],
    ]
    if name:  # `bendi run ""` means "no model given" and runs the default one
        commands.append(["run", name, "--prompt", "hi"])
    for argv in commands:
        code, out, err = _run(capsys, *argv)
        assert code != 0, (argv, out)
        assert "Traceback" not in err and err.startswith("bendi:"), (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written beside the home
    assert (
        not list(DataPaths(bendi_home).manifests.glob("**/*.json"))
        if DataPaths(bendi_home).manifests.exists()
        else True
    )


def test_reference_parser_accepts_real_names_and_rejects_traversal():
    assert str(parse_model_name("deepseek-r1:7b-q4_K_M")) == "deepseek-r1:7b-q4_K_M"
    assert str(parse_model_name("deepseek-r1")) == "deepseek-r1:latest"
    hub = parse_hub_file(
        "hf:unsloth/DeepSeek-R1-GGUF/DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf"
    )
    assert hub.repo == "unsloth/DeepSeek-R1-GGUF" and hub.file_name.endswith("00003.gguf")
    assert hub.default_model_name().name == "deepseek-r1-ud-iq1_s"
    assert split_parts("A-00002-of-00003.gguf") == [f"A-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    assert parse_digest("sha256-" + "a" * 64)
    for bad in ("sha256-" + "A" * 64, "sha256-../x", "md5-abc"):
        with pytest.raises(InvalidNameError):
            parse_digest(bad)
    with pytest.raises(InvalidNameError):
        split_parts("A-00004-of-00003.gguf")
    for bad in HOSTILE:
        with pytest.raises(InvalidNameError):
            parse_hub_file(bad) if bad.startswith(("hf:", "modelscope:")) else parse_model_name(bad)
    assert os.sep not in str(parse_model_name("a.b_c-d:e"))


def test_pull_of_an_unknown_catalog_name_suggests_what_to_do(bendi_home, capsys):
    code, _, err = _run(capsys, "pull", "deepseek-r9:7b")
    assert code == 1 and "catalog" in err
    assert Path(bendi_home).is_dir()


def test_a_tampered_manifest_is_reported_not_followed(bendi_home, tmp_path, capsys):
    source = write_gguf(tmp_path / "ok.gguf", 10_000)
    assert _run(capsys, "import", str(source), "--name", "victim")[0] == 0
    manifest = DataPaths(bendi_home).manifests / "victim" / "latest.json"
    data = json.loads(manifest.read_text())
    data["files"][0]["file_name"] = "../../../../etc/passwd"
    manifest.write_text(json.dumps(data))
    (DataPaths(bendi_home).manifests / "bad name!").mkdir()
    (DataPaths(bendi_home).manifests / "bad name!" / "x.json").write_text("{}")
    code, out, _ = _run(capsys, "list", "--json")
    assert code == 0 and "victim:latest" not in {r["name"] for r in json.loads(out)}
    code, _, err = _run(capsys, "show", "victim")
    assert code == 1 and "damaged" in err
    assert _run(capsys, "rm", "victim")[0] == 0
    assert not manifest.exists()
