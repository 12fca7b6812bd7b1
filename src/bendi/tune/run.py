"""`bendi tune`: validate the data, check memory, run the training script in the tuning venv, convert
the adapter to a GGUF LoRA with llama.cpp's own converter, and register it as the preset BASE+NAME.

Everything a run needs and makes lives in one directory (<home>/tune/<preset>/): the normalized
data, config.json, the trainer's checkpoint and log, the converted adapter.gguf and metrics.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bendi.core.errors import BendiError, UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.engines.adapters import check_adapters
from bendi.store.local_model import AdapterRef, LocalModel
from bendi.store.presets import Preset, canonical_name
from bendi.store.presets_create import create_preset
from bendi.store.resolve import resolve_model
from bendi.tune.data import load_tune_data
from bendi.tune.environment import TuneEnvironment, find_environment
from bendi.tune.memory import estimate, refuse_unless_fits
from bendi.tune.shape import model_shape

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# The projections of a llama-style decoder (Llama, Qwen2, Gemma, SmolLM2 name them alike).
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
STOP_GRACE_S = 120.0  # how long an interrupted trainer may take to write its checkpoint
Event = dict[str, Any]


class TuneFailedError(BendiError):
    http_status = 500
    code = "tune_failed"


class TuneInterrupted(BendiError):
    """Ctrl-C: the trainer saved a checkpoint; `--resume` continues from it."""

    code = "tune_interrupted"

    def __init__(self, message: str, step: int, total: int) -> None:
        super().__init__(message)
        self.step, self.total = step, total


@dataclass(frozen=True)
class TuneOptions:
    base: str
    data: Path
    name: str
    eval_data: Path | None = None
    epochs: int = 3
    max_steps: int = 0  # 0: epochs decide
    resume: bool = False
    rank: int = 16
    alpha: int = 32
    learning_rate: float = 1e-3
    batch_size: int = 8
    max_length: int = 256
    threads: int = 0  # 0: torch's default
    seed: int = 0


class TuneControl:
    """Stops a run from another thread (DELETE /api/tune/ID): the trainer gets SIGINT, finishes its
    step, checkpoints and exits, exactly as after Ctrl-C in a terminal."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self.stop_requested = False

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        if self.stop_requested:
            self.stop()

    def stop(self) -> None:
        self.stop_requested = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)


@dataclass(frozen=True)
class TuneResult:
    preset: str
    adapter: Path
    metrics: dict[str, Any]


def preset_for(paths: DataPaths, options: TuneOptions) -> str:
    """The preset a run registers: BASE+NAME, with the base's canonical name."""
    return canonical_name(f"{_base(paths, options).name}+{options.name}")


def run_dir_for(paths: DataPaths, preset: str) -> Path:
    return paths.home / "tune" / preset.replace(":", "-")


def _hf_cache(paths: DataPaths, gguf: Path) -> Path:
    """One dequantized copy per GGUF file (path, size, mtime), shared by every run on that base."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return paths.home / "tune" / "hf" / key


def check_options(options: TuneOptions) -> None:
    if not NAME.match(options.name):
        raise UserInputError(
            f"--name {options.name!r}: use up to 64 letters, digits, '.', '_' or '-' (the preset is BASE+NAME)."
        )
    for flag, value, low in (("--epochs", options.epochs, 1), ("--rank", options.rank, 1),
                             ("--batch-size", options.batch_size, 1), ("--max-length", options.max_length, 16),
                             ("--max-steps", options.max_steps, 0)):  # fmt: skip
        if value < low:
            raise UserInputError(f"{flag} must be at least {low} (got {value}).")
    if not 0 < options.learning_rate < 1:
        raise UserInputError(f"--lr must be between 0 and 1 (got {options.learning_rate}).")


def check_resumable(run_dir: Path) -> None:
    if not (run_dir / "checkpoint" / "state.json").is_file() or not (run_dir / "config.json").is_file():
        raise UserInputError(
            f"There is no interrupted run of {run_dir.name} to resume; start it without --resume."
        )


def _base(paths: DataPaths, options: TuneOptions) -> LocalModel:
    model = resolve_model(paths, options.base)
    if model.adapters:
        raise UserInputError(
            f"{options.base} already has a LoRA adapter; tune its base model instead (`bendi show {options.base} "
            "--modelfile` names it)."
        )
    return model


def _config(
    options: TuneOptions, run_dir: Path, model: LocalModel, hf_dir: Path, data_sha: str
) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir), "hf_dir": str(hf_dir),
        "gguf_path": str(model.path) if model.format == "gguf" else None,
        "seed": options.seed, "threads": options.threads, "rank": options.rank, "alpha": options.alpha,
        "dropout": 0.05, "target_modules": TARGET_MODULES, "lr": options.learning_rate,
        "batch_size": options.batch_size, "max_length": options.max_length, "epochs": options.epochs,
        "max_steps": options.max_steps, "warmup_ratio": 0.1, "eval_every": 10, "checkpoint_every": 10,
        "resume": options.resume, "data_sha256": data_sha,
    }  # fmt: skip


def _prepare(paths: DataPaths, options: TuneOptions, model: LocalModel, run_dir: Path) -> dict[str, Any]:
    """Write the run directory's inputs; a resume must see the same data it started with."""
    train = load_tune_data(options.data)
    held_out = load_tune_data(options.eval_data) if options.eval_data else None
    data_sha = hashlib.sha256((train.sha256 + (held_out.sha256 if held_out else "")).encode()).hexdigest()
    hf_dir = model.path if model.format == "hf" else _hf_cache(paths, model.path)
    config = _config(options, run_dir, model, hf_dir, data_sha)
    if options.resume:
        check_resumable(run_dir)
        previous = run_dir / "config.json"
        if json.loads(previous.read_text(encoding="utf-8")).get("data_sha256") != data_sha:
            raise UserInputError(
                "--resume needs the same --data and --eval files as the interrupted run; these differ. "
                "Start again without --resume."
            )
    else:
        # A new run starts from scratch; the served adapter.gguf stays until the new one replaces it.
        for stale in (
            "checkpoint",
            "checkpoint.partial",
            "checkpoint.old",
            "adapter",
            "history.json",
            "train.log",
        ):
            path = run_dir / stale
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "train.jsonl").write_text(train.to_jsonl(), encoding="utf-8")
    if held_out is not None:
        (run_dir / "eval.jsonl").write_text(held_out.to_jsonl(), encoding="utf-8")
    (run_dir / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return {"train_examples": len(train.conversations), "train_sha256": train.sha256,
            "eval_examples": len(held_out.conversations) if held_out else 0,
            "eval_sha256": held_out.sha256 if held_out else None}  # fmt: skip


def _train(
    env: TuneEnvironment, run_dir: Path, on_event: Callable[[Event], None], control: TuneControl
) -> list[Event]:
    """Run the trainer, handing each progress event on; Ctrl-C lets it checkpoint, then stops."""
    events: list[Event] = []
    log = (run_dir / "train.log").open("ab")
    # The trainer shares the terminal's process group, so Ctrl-C reaches it too.
    proc = subprocess.Popen(
        [str(env.python), str(env.trainer), str(run_dir / "config.json")],
        stdout=subprocess.PIPE, stderr=log,
        env={**_child_env(), "PYTHONUNBUFFERED": "1", "BENDI_PARENT_PID": str(os.getpid())},
    )  # fmt: skip
    control.attach(proc)
    assert proc.stdout is not None
    interrupted = False
    try:
        while True:
            try:
                for raw in proc.stdout:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("{"):
                        log.write(raw)
                        continue
                    event = json.loads(line)
                    events.append(event)
                    on_event(event)
                break
            except KeyboardInterrupt:
                interrupted = True  # keep reading: the trainer finishes its step and checkpoints
        proc.wait()
    finally:
        if proc.poll() is None:  # our caller is going away: ask the trainer to save, then make sure
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    last = events[-1] if events else {}
    if proc.returncode == 130 or interrupted or control.stop_requested:
        step, total = int(last.get("step", 0)), int(last.get("total", 0))
        raise TuneInterrupted(f"Stopped at step {step} of {total}; the checkpoint is saved.", step, total)
    if proc.returncode != 0:
        reason = last.get("message") if last.get("event") == "error" else _tail(run_dir / "train.log")
        raise TuneFailedError(f"Training failed (exit {proc.returncode}): {reason}")
    return events


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the venv's own packages only


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    return "(no log)"


def _convert(env: TuneEnvironment, run_dir: Path, hf_dir: Path) -> Path:
    """llama.cpp's converter turns the PEFT adapter into the GGUF LoRA that llama.cpp loads."""
    out = run_dir / "adapter.gguf"
    partial = run_dir / "adapter.gguf.partial"
    done = subprocess.run(
        [str(env.python), str(env.converter), "--base", str(hf_dir), "--outfile", str(partial),
         "--outtype", "f32", str(run_dir / "adapter")],
        capture_output=True, text=True, env=_child_env(), timeout=1800,
    )  # fmt: skip
    if done.returncode != 0 or not partial.is_file():
        raise TuneFailedError(f"Converting the adapter to GGUF failed: {done.stderr.strip()[-1500:]}")
    partial.replace(out)
    return out


def run_tune(
    settings: Settings,
    paths: DataPaths,
    options: TuneOptions,
    on_event: Callable[[Event], None] = lambda e: None,
    control: TuneControl | None = None,
) -> TuneResult:
    import psutil

    check_options(options)
    env = find_environment()
    model = _base(paths, options)
    preset_name = preset_for(paths, options)
    run_dir = run_dir_for(paths, preset_name)
    needed = estimate(model_shape(model), rank=options.rank, batch_size=options.batch_size,
                      max_length=options.max_length)  # fmt: skip
    refuse_unless_fits(needed, psutil.virtual_memory().available)
    data = _prepare(paths, options, model, run_dir)
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    on_event(
        {
            "event": "prepared",
            "preset": preset_name,
            "run_dir": str(run_dir),
            "memory": needed.describe(),
            **data,
        }
    )
    started = time.time()
    events = _train(env, run_dir, on_event, control or TuneControl())
    on_event({"event": "status", "message": "converting the adapter to GGUF"})
    adapter = _convert(env, run_dir, Path(config["hf_dir"]))
    ref = AdapterRef(adapter, 1.0)
    check_adapters(LocalModel(preset_name, model.path, model.size_bytes, "preset", adapters=(ref,)))
    preset = create_preset(settings, paths, Preset(name=preset_name, base=model.name, adapters=[ref]))
    metrics = _metrics(
        options, preset.name, model.name, data, events, run_dir, adapter, time.time() - started
    )
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False), encoding="utf-8")
    return TuneResult(preset.name, adapter, metrics)


def _metrics(options: TuneOptions, preset: str, base: str, data: dict[str, Any], events: list[Event],
             run_dir: Path, adapter: Path, wall_s: float) -> dict[str, Any]:  # fmt: skip
    steps = [e for e in events if e["event"] == "step"]
    evals = [[e["step"], e["eval_loss"]] for e in events if e["event"] == "eval"]
    done = next((e for e in events if e["event"] == "done"), {})
    history_file = run_dir / "history.json"
    history = json.loads(history_file.read_text()) if history_file.is_file() else {}
    losses = history.get("loss") or [[e["step"], e["loss"]] for e in steps]
    return {
        "preset": preset, "base": base, "created_s": time.time(), "wall_s": wall_s,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "data": data, "steps": done.get("step", 0), "total_steps": done.get("total", 0),
        "train_s": done.get("train_s"), "tokens_per_s": steps[-1]["tokens_per_s"] if steps else None,
        "loss_first": losses[0][1] if losses else None, "loss_last": losses[-1][1] if losses else None,
        "eval_loss": history.get("eval_loss") or evals,
        "adapter": {"path": str(adapter), "bytes": adapter.stat().st_size},
    }  # fmt: skip
