"""LoRA supervised fine-tuning, run by `bendi tune` inside the tuning venv (BENDI_TUNE_PYTHON).

This file is executed as a script by another interpreter: it imports only the standard library,
torch, transformers and peft, never bendi. It talks to bendi through files in the run directory
(config.json in, checkpoint/ and adapter/ out) and JSON lines on stdout (progress events).

Why a hand-written loop and not transformers' Trainer: resume must continue from an exact step
with the same data order, Ctrl-C must save before exiting, and progress must be machine-readable;
a plain loop does all three in a page and costs nothing in speed (benchmarks/bench_tune.py).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from transformers import AutoModelForCausalLM, AutoTokenizer

IGNORE = -100  # label value cross_entropy skips: prompt, system and padding tokens


def emit(event: str, **fields: Any) -> None:
    """One progress event per line; bendi's supervisor parses these (anything else is a log line)."""
    print(json.dumps({"event": event, **fields}, ensure_ascii=False), flush=True)


# ---------------------------------------------------------------- base model


def load_base(cfg: dict[str, Any]) -> tuple[Any, Any]:
    """The base as an fp32 HF model. A GGUF is dequantized once by transformers' GGUF loader and the
    HF copy is cached, because dequantizing takes longer than a short training run."""
    hf_dir = Path(cfg["hf_dir"])
    if not (hf_dir / "config.json").is_file():
        gguf = Path(cfg["gguf_path"])
        emit("status", message=f"dequantizing {gguf.name} to an HF-format copy in {hf_dir}")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are plain fp32 tensors now; transformers still marks the model "quantized with
        # gguf" and refuses to save it, and a copy that said so would load as a GGUF again.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        partial = hf_dir.with_name(hf_dir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.rename(hf_dir)  # only a complete copy ever has the final name
        return model, tokenizer
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    return model, tokenizer


# ---------------------------------------------------------------- data


def assistant_masked(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> dict[str, list[int]]:
    """Token ids of a conversation in the base's chat template, with labels only on assistant turns.

    The template is rendered for each prefix of the conversation: the text an assistant turn adds
    beyond "prefix + generation prompt" is exactly what the model must learn to produce (its answer
    and end-of-turn marker), whatever the template's markup looks like.
    """
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True))
        end = len(tokenizer.apply_chat_template(messages[: i + 1], tokenize=False))
        spans.append((start, end))
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"][:max_length]
    offsets = encoded["offset_mapping"][:max_length]
    labels = [
        tok if any(s <= begin < e for s, e in spans) else IGNORE
        for tok, (begin, _end) in zip(ids, offsets, strict=True)
    ]
    return {"input_ids": ids, "labels": labels}


def load_examples(path: Path, tokenizer: Any, max_length: int) -> list[dict[str, list[int]]]:
    examples = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            example = assistant_masked(tokenizer, json.loads(line)["messages"], max_length)
            if any(label != IGNORE for label in example["labels"]):  # truncated away: nothing to learn
                examples.append(example)
    return examples


def collate(batch: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example["input_ids"])
        ids[row, :n] = torch.tensor(example["input_ids"])
        labels[row, :n] = torch.tensor(example["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The same shuffled order for an epoch on every run, so a resumed run sees the batches the
    interrupted one would have seen."""
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def batch_at(examples: list[Any], step: int, batch_size: int, seed: int) -> list[Any]:
    per_epoch = math.ceil(len(examples) / batch_size)
    epoch, index = divmod(step, per_epoch)
    order = epoch_order(len(examples), seed, epoch)
    return [examples[i] for i in order[index * batch_size : (index + 1) * batch_size]]


# ---------------------------------------------------------------- training


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up then linear decay: a pure function of the step, so resuming needs no state."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def on_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in batch.items()}


def eval_loss(model: Any, examples: list[Any], batch_size: int, pad_id: int, device: torch.device) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = on_device(collate(examples[start : start + batch_size], pad_id), device)
            n = int((batch["labels"][:, 1:] != IGNORE).sum())
            total += float(model(**batch).loss) * n
            count += n
    model.train()
    return total / max(1, count)


def save_checkpoint(model: Any, optimizer: Any, run_dir: Path, step: int, history: dict[str, Any]) -> None:
    """Adapter + optimizer + step, written beside and renamed in, so a kill mid-save keeps the last one."""
    final = run_dir / "checkpoint"
    partial = run_dir / "checkpoint.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    torch.save(optimizer.state_dict(), partial / "optimizer.pt")
    (partial / "state.json").write_text(json.dumps({"step": step, "history": history}))
    old = run_dir / "checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    partial.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def build_model(cfg: dict[str, Any], base: Any) -> Any:
    lora = LoraConfig(
        r=cfg["rank"],
        lora_alpha=cfg["alpha"],
        lora_dropout=cfg["dropout"],
        target_modules=cfg["target_modules"],
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, lora)


def restore(model: Any, optimizer: Any, run_dir: Path) -> tuple[int, dict[str, Any]]:
    ckpt = run_dir / "checkpoint"
    if not (ckpt / "state.json").is_file():
        return 0, {"loss": [], "eval_loss": []}
    from safetensors.torch import load_file  # comes with transformers

    set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True, map_location="cpu"))
    state = json.loads((ckpt / "state.json").read_text())
    return int(state["step"]), state["history"]


def die_with_parent() -> None:
    """bendi (the CLI, or the server's job thread) going away must not leave a trainer running: Linux
    sends SIGTERM when it exits, which checkpoints and stops like Ctrl-C. Set here, in the trainer
    itself, not between fork and exec in a threaded server."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    parent = os.environ.get("BENDI_PARENT_PID")
    if parent and os.getppid() != int(parent):  # it went away before the line above
        os.kill(os.getpid(), signal.SIGTERM)


class StopFlag:
    """Ctrl-C finishes the current step, saves a checkpoint, then exits with 130."""

    def __init__(self) -> None:
        self.stop = False
        signal.signal(signal.SIGINT, self._set)
        signal.signal(signal.SIGTERM, self._set)

    def _set(self, _signum: int, _frame: Any) -> None:
        self.stop = True


def train(cfg: dict[str, Any]) -> int:
    run_dir = Path(cfg["run_dir"])
    torch.manual_seed(cfg["seed"])
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    flag = StopFlag()
    die_with_parent()
    base, tokenizer = load_base(cfg)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_set = load_examples(run_dir / "train.jsonl", tokenizer, cfg["max_length"])
    eval_path = run_dir / "eval.jsonl"
    eval_set = load_examples(eval_path, tokenizer, cfg["max_length"]) if eval_path.is_file() else []
    if not train_set:
        emit("error", message="no training example has an assistant token left after truncation")
        return 2
    per_epoch = math.ceil(len(train_set) / cfg["batch_size"])
    total = cfg["max_steps"] or per_epoch * cfg["epochs"]
    # A CUDA GPU when the venv's torch has one (a CUDA build of torch), else the CPU.
    device = torch.device(
        "cuda" if torch.cuda.is_available() and cfg.get("device", "auto") != "cpu" else "cpu"
    )
    model = build_model(cfg, base).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=0.0)
    step, history = (
        restore(model, optimizer, run_dir) if cfg["resume"] else (0, {"loss": [], "eval_loss": []})
    )
    trainable = sum(p.numel() for p in params)
    emit("start", step=step, total=total, device=device.type, examples=len(train_set), eval_examples=len(eval_set),
         trainable_params=trainable, resumed=step > 0)  # fmt: skip
    if eval_set and step == 0:
        loss = eval_loss(model, eval_set, cfg["batch_size"], pad_id, device)
        history["eval_loss"].append([0, loss])
        emit("eval", step=0, total=total, eval_loss=loss)
    warmup = max(1, int(total * cfg["warmup_ratio"]))
    started = time.monotonic()
    tokens_done = 0
    steps_done = 0
    while step < total:
        batch = on_device(collate(batch_at(train_set, step, cfg["batch_size"], cfg["seed"]), pad_id), device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total, cfg["lr"], warmup)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        steps_done += 1
        tokens_done += int(batch["attention_mask"].sum())
        elapsed = time.monotonic() - started
        history["loss"].append([step, float(loss.detach())])
        emit("step", step=step, total=total, loss=float(loss.detach()), tokens_per_s=tokens_done / elapsed,
             eta_s=elapsed / steps_done * (total - step), lr=optimizer.param_groups[0]["lr"])  # fmt: skip
        if eval_set and (step % cfg["eval_every"] == 0 or step == total):
            loss_value = eval_loss(model, eval_set, cfg["batch_size"], pad_id, device)
            history["eval_loss"].append([step, loss_value])
            emit("eval", step=step, total=total, eval_loss=loss_value)
        if flag.stop or step % cfg["checkpoint_every"] == 0 or step == total:
            save_checkpoint(model, optimizer, run_dir, step, history)
            emit("checkpoint", step=step, total=total)
        if flag.stop:
            emit("interrupted", step=step, total=total)
            return 130
    adapter = run_dir / "adapter"
    model.save_pretrained(adapter)
    (run_dir / "history.json").write_text(json.dumps(history))
    emit("done", step=step, total=total, adapter=str(adapter), train_s=time.monotonic() - started)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", type=Path, help="run directory's config.json (written by bendi tune)")
    args = parser.parse_args(argv)
    cfg = json.loads(args.config.read_text(encoding="utf-8"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings; threads are torch's
    return train(cfg)


if __name__ == "__main__":
    sys.exit(main())
