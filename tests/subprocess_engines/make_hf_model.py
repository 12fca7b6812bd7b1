"""Turn a GGUF into a Hugging Face-format model directory (run with the vLLM venv's python).

Usage: python make_hf_model.py GGUF OUT_DIR [--think]

transformers dequantizes the GGUF to bf16 safetensors and writes the tokenizer and chat template.
With --think the copy also has `<think>`/`</think>` as special tokens (two special tokens the
instruct model never produces, renamed) and a ChatML template that opens `<think>` after the
assistant header when the system prompt is exactly THINK_SYSTEM, the way hybrid reasoning models'
templates switch thinking on (the DeepSeek-R1 distills always open it). So one model, and one
engine start, serves both the plain tests and the reasoning test, without downloading anything.
Writes into OUT_DIR.part and renames it at the end, so a half-made copy is never used.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

THINK_IDS = (15, 16)  # two of SmolLM2's code-data special tokens
THINK_SYSTEM = "Think step by step."
THINK_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if messages[0]['role'] == 'system' and messages[0]['content'] == '" + THINK_SYSTEM + "' %}"
    "{{ '<think>\n' }}{% endif %}{% endif %}"
)


def convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True),
    )
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(out))


def add_think_tokens(out: Path) -> None:
    tokenizer_json = out / "tokenizer.json"
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    names = dict(zip(THINK_IDS, ("<think>", "</think>"), strict=True))
    old: dict[str, str] = {}
    for token in data["added_tokens"]:
        if token["id"] in names:
            old[token["content"]] = names[token["id"]]
            token["content"] = names[token["id"]]
    vocab = data["model"]["vocab"]
    for before, after in old.items():
        vocab[after] = vocab.pop(before)
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for entry in (config.get("added_tokens_decoder") or {}).values():
        if entry.get("content") in old:
            entry["content"] = old[entry["content"]]
    for key in ("additional_special_tokens", "extra_special_tokens"):
        value = config.get(key)
        if isinstance(value, list):
            config[key] = [old.get(item, item) if isinstance(item, str) else item for item in value]
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    (out / "chat_template.jinja").write_text(THINK_TEMPLATE, encoding="utf-8")


def main(argv: list[str]) -> int:
    gguf, out = Path(argv[1]), Path(argv[2])
    part = out.with_name(out.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    convert(gguf, part)
    if "--think" in argv[3:]:
        add_think_tokens(part)
    shutil.rmtree(out, ignore_errors=True)
    part.rename(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
