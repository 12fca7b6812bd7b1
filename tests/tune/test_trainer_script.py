"""The training script in the real tuning venv: dequantizes the bundled GGUF, trains, checkpoints,
resumes from the checkpoint, and its adapter converts to a GGUF LoRA with llama.cpp's converter."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from mining_facts import held_out_pairs, training_pairs

import bendi
from bendi.tune.data import load_tune_data

# A script for another interpreter (it imports torch): run by path, never imported here.
TRAINER = Path(bendi.__file__).parent / "tune" / "trainer_main.py"

TUNE_PYTHON = os.environ.get("BENDI_TUNE_PYTHON")
pytestmark = pytest.mark.skipif(
    not TUNE_PYTHON, reason="BENDI_TUNE_PYTHON is not set (bash scripts/install_tune.sh prints it)"
)


def run(config: Path) -> list[dict[str, object]]:
    done = subprocess.run([TUNE_PYTHON or "", str(TRAINER), str(config)], capture_output=True,
                          text=True, timeout=280, check=True)  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.timeout(600)
def test_train_checkpoint_resume_and_convert(tmp_path: Path, smollm2_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name, pairs in (("train", training_pairs()[:16]), ("eval", held_out_pairs()[:8])):
        source = tmp_path / f"{name}-pairs.jsonl"
        source.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
        (run_dir / f"{name}.jsonl").write_text(load_tune_data(source).to_jsonl(), encoding="utf-8")
    cfg = {"run_dir": str(run_dir), "hf_dir": str(tmp_path / "hf"), "gguf_path": str(smollm2_path),
           "seed": 0, "threads": 2, "rank": 8, "alpha": 16, "dropout": 0.0,
           "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
           "lr": 2e-3, "batch_size": 4, "max_length": 128, "epochs": 1, "max_steps": 2, "warmup_ratio": 0.1,
           "eval_every": 2, "checkpoint_every": 1, "resume": False}  # fmt: skip
    config = run_dir / "config.json"
    config.write_text(json.dumps(cfg))
    first = run(config)
    assert [e["step"] for e in first if e["event"] == "checkpoint"] == [1, 2]
    assert (tmp_path / "hf" / "config.json").is_file()  # the dequantized copy is kept for next time
    evals = [e["eval_loss"] for e in first if e["event"] == "eval"]
    assert evals[-1] < evals[0]  # held-out questions' loss falls
    config.write_text(json.dumps({**cfg, "max_steps": 3, "resume": True}))
    second = run(config)
    start = next(e for e in second if e["event"] == "start")
    assert start["resumed"] is True and start["step"] == 2
    assert [e["step"] for e in second if e["event"] == "step"] == [3]
    converter = Path(TUNE_PYTHON or "").parents[1] / "llama.cpp" / "convert_lora_to_gguf.py"
    out = tmp_path / "adapter.gguf"
    subprocess.run([TUNE_PYTHON or "", str(converter), "--base", str(tmp_path / "hf"), "--outfile", str(out),
                    "--outtype", "f32", str(run_dir / "adapter")], capture_output=True, timeout=200, check=True)  # fmt: skip
    assert out.stat().st_size > 1_000_000
