"""`bendi create NAME -f FILE`, `bendi show NAME --modelfile`, `bendi list`, `bendi run PRESET`,
`bendi rm`, in process against a fresh BENDI_HOME with the bundled SmolLM2."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bendi.cli.create import run_defaults
from bendi.cli.main import main
from bendi.core.settings import Settings
from bendi.services import build_services

BENFILE = """# the safety office's assistant
FROM smollm2:135m
SYSTEM \"\"\"You are the safety office's assistant.
Answer briefly.\"\"\"
PARAMETER temperature 0.1
PARAMETER num_predict 3
PARAMETER num_ctx 4096
PARAMETER stop "<|im_end|>"
MESSAGE user What does PPE mean?
MESSAGE assistant Personal protective equipment.
"""


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_show_list_rm(bendi_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    benfile = tmp_path / "Benfile"
    benfile.write_text(BENFILE, encoding="utf-8")
    code, out, _ = _run(capsys, "create", "safety", "-f", str(benfile))
    assert code == 0 and "Created preset safety:latest (FROM smollm2:135m)" in out
    assert "PARAMETER num_ctx is kept but not applied" in out
    code, out, _ = _run(capsys, "show", "safety", "--modelfile")
    assert code == 0 and out.startswith("# Modelfile of the bendi preset safety:latest\nFROM smollm2:135m\n")
    assert 'SYSTEM """You are the safety office\'s assistant.\nAnswer briefly."""' in out
    assert "PARAMETER temperature 0.1" in out and 'MESSAGE user """What does PPE mean?"""' in out
    code, out, _ = _run(capsys, "show", "safety", "--json")
    assert json.loads(out)["modelfile"] == BENFILE  # the text as written is kept
    code, out, _ = _run(capsys, "list")
    assert code == 0 and "PRESET" in out and "safety:latest" in out
    assert [r for r in json.loads(_run(capsys, "list", "--json")[1]) if r.get("preset")][0][
        "base"
    ] == "smollm2:135m"
    code, _, err = _run(capsys, "rm", "smollm2:135m")
    assert code == 1 and "base of the preset(s) safety:latest" in err
    code, out, _ = _run(capsys, "rm", "safety")
    assert code == 0 and "Removed preset safety" in out
    assert "safety" not in _run(capsys, "list")[1]


def test_create_errors_are_sentences_with_lines(bendi_home: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    bad = tmp_path / "Modelfile"
    bad.write_text("FROM smollm2:135m\nPARAMETER temprature 0.5\n")
    code, _, err = _run(capsys, "create", "x", "-f", str(bad))
    assert code == 1 and "Modelfile line 2: unknown PARAMETER 'temprature'" in err
    code, _, err = _run(capsys, "create", "x", "-f", str(tmp_path / "missing"))
    assert code == 1 and "Cannot read the Modelfile" in err
    bad.write_text("FROM no-such-model:1b\n")
    code, _, err = _run(capsys, "create", "x", "-f", str(bad))
    assert code == 1 and "FROM 'no-such-model:1b'" in err
    bad.write_text("FROM smollm2:135m\nKNOWLEDGE nothing-here\n")
    code, _, err = _run(capsys, "create", "x", "-f", str(bad))
    assert code == 1 and "no knowledge base named nothing-here" in err
    big = tmp_path / "Big"
    big.write_bytes(b"FROM smollm2:135m\n#" + b"x" * 10_000_000)
    code, _, err = _run(capsys, "create", "x", "-f", str(big))
    assert code == 1 and "at most 1 MB" in err
    assert "x:latest" not in _run(capsys, "list")[1]


def test_run_uses_the_presets_defaults(settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    benfile = tmp_path / "Benfile"
    benfile.write_text(BENFILE, encoding="utf-8")
    assert _run(capsys, "create", "safety", "-f", str(benfile))[0] == 0
    services = build_services(settings)
    flags = argparse.Namespace(temperature=None, seed=None, max_tokens=None, system=None)
    params, system, turns = run_defaults(services, "safety", flags)
    assert (params.temperature, params.max_tokens, params.stop) == (0.1, 3, ("<|im_end|>",))
    assert system == "You are the safety office's assistant.\nAnswer briefly."
    assert [t.role for t in turns] == ["user", "assistant"]
    flags = argparse.Namespace(temperature=0.9, seed=None, max_tokens=7, system="Mine.")
    params, system, _ = run_defaults(services, "safety", flags)  # flags win over the preset
    assert (params.temperature, params.max_tokens, system) == (0.9, 7, "Mine.")
    params, system, turns = run_defaults(services, "smollm2:135m", argparse.Namespace(
        temperature=None, seed=None, max_tokens=None, system=None))  # fmt: skip
    assert (params.temperature, system, turns) == (0.6, None, [])  # a plain model: as before

    # A real `bendi run` process (BENDI_HOME is this test's), greedy and long enough to say something:
    # the preset's own 3 tokens at temperature 0.1 may all be blank.
    done = subprocess.run([str(Path(sys.executable).parent / "bendi"), "run", "safety", "--prompt", "Is a helmet PPE?",
                           "--hide-thinking", "--temperature", "0", "--max-tokens", "16"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip(), done.stderr  # the preset loads its base and answers


def test_an_adapter_that_is_no_lora_is_refused_at_create(bendi_home: Path, tmp_path: Path, smollm2_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    (tmp_path / "not-a-lora.gguf").symlink_to(smollm2_path)  # a GGUF, but a whole model, not an adapter
    benfile = tmp_path / "Benfile"
    benfile.write_text("FROM smollm2:135m\nADAPTER ./not-a-lora.gguf\nPARAMETER adapter_scale 0.5\n")
    code, _, err = _run(capsys, "create", "tuned", "-f", str(benfile))
    assert code == 1 and "not-a-lora.gguf" in err, err
    assert "tuned" not in _run(capsys, "list")[1]  # nothing left behind
