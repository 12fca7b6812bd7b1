"""What bendi reads from a Hugging Face-format model directory: config facts, chat template, tokenizer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bendi.core.errors import InvalidModelFileError
from bendi.engines.chat_template import CHATML_TEMPLATE, ChatTemplate

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
GIB = 2**30


def is_hf_model_dir(path: Path) -> bool:
    """A directory with a config.json: what vLLM and SGLang load (a name that cannot be a path is not)."""
    try:
        return path.is_dir() and (path / "config.json").is_file()
    except (OSError, ValueError):  # too long, NUL, ...: a model name, not a directory
        return False


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidModelFileError(
            f"{path} is not valid JSON ({exc}). Re-download or re-import the model."
        ) from exc
    return data if isinstance(data, dict) else {}


def _token_text(value: Any) -> str:
    """tokenizer_config.json writes special tokens as a string or as {"content": ...}."""
    if isinstance(value, dict):
        return str(value.get("content") or "")
    return value if isinstance(value, str) else ""


def _template_source(path: Path, tokenizer_config: dict[str, Any]) -> str:
    """chat_template.jinja (transformers 5), else tokenizer_config.json's chat_template (a string, or
    a list of named templates of which "default" is the chat one), else ChatML."""
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    value = tokenizer_config.get("chat_template")
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list):
        named = {item.get("name"): item.get("template") for item in value if isinstance(item, dict)}
        chosen = named.get("default") or next(iter(named.values()), None)
        if isinstance(chosen, str):
            return chosen
    return CHATML_TEMPLATE


def _kv_bytes_per_token(config: dict[str, Any]) -> int:
    """K and V of every layer for one token, at 2 bytes a value (MLA models cache a compressed latent)."""
    nested = config.get("text_config")
    text: dict[str, Any] = nested if isinstance(nested, dict) else config
    layers = int(text.get("num_hidden_layers") or 0)
    if text.get("kv_lora_rank"):  # DeepSeek V2/V3/R1: one latent plus the rope part per layer
        return layers * (int(text["kv_lora_rank"]) + int(text.get("qk_rope_head_dim") or 0)) * 2
    heads = int(text.get("num_attention_heads") or 0)
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or (int(text.get("hidden_size") or 0) // heads if heads else 0))
    return 2 * layers * kv_heads * head_dim * 2


@dataclass(frozen=True)
class HfModel:
    """Facts about one Hugging Face-format model directory."""

    path: Path
    architecture: str
    weights_bytes: int
    kv_bytes_per_token: int
    quantization: str
    template: ChatTemplate

    def kv_cache_gib(self, tokens: int) -> int:
        """Whole GiB of KV cache for `tokens` tokens in flight (at least 1)."""
        return max(1, -(-self.kv_bytes_per_token * tokens // GIB))


def read_hf_model(path: Path) -> HfModel:
    if not is_hf_model_dir(path):
        raise InvalidModelFileError(
            f"{path} is not a Hugging Face-format model directory (it has no config.json)."
        )
    config = _read_json(path / "config.json")
    tokenizer_config = _read_json(path / "tokenizer_config.json")
    architectures = config.get("architectures") or [config.get("model_type") or "unknown"]
    quant = config.get("quantization_config") or {}
    weights = sum(
        f.stat().st_size for f in path.iterdir() if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES)
    )
    template = ChatTemplate(
        _template_source(path, tokenizer_config),
        bos_token=_token_text(tokenizer_config.get("bos_token")),
        eos_token=_token_text(tokenizer_config.get("eos_token")),
    )
    return HfModel(
        path=path,
        architecture=str(architectures[0]),
        weights_bytes=weights,
        kv_bytes_per_token=_kv_bytes_per_token(config),
        quantization=str(quant.get("quant_method") or config.get("torch_dtype") or config.get("dtype") or ""),
        template=template,
    )


class TokenCounter(Protocol):
    def __call__(self, text: str) -> int: ...


def local_token_counter(path: Path) -> TokenCounter | None:
    """Count with the model's own tokenizer.json when the `tokenizers` package is importable in
    bendi's environment (no HTTP round trip), else None (the engine's /tokenize route is used)."""
    tokenizer_file = path / "tokenizer.json"
    if not tokenizer_file.is_file():
        return None
    try:
        from tokenizers import Tokenizer  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    except Exception:  # a tokenizer this version cannot read: the engine counts instead
        return None

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count
