"""The size of a base model as the memory estimate needs it, read from a GGUF header or an HF config."""

from __future__ import annotations

import json

from bendi.core.errors import UserInputError
from bendi.engines.adapters import tensor_shapes
from bendi.store.gguf import read_gguf
from bendi.store.local_model import LocalModel
from bendi.tune.memory import ModelShape

BYTES_PER_PARAMETER = {"float32": 4, "float16": 2, "bfloat16": 2}


def model_shape(model: LocalModel) -> ModelShape:
    if model.format == "hf":
        return _hf_shape(model)
    info = read_gguf(model.path)
    embedding = tensor_shapes(model.path).get("token_embd.weight", ())
    vocab = max(embedding) if embedding else 0
    if not (info.layer_count and info.embedding_length and vocab):
        raise UserInputError(
            f"{model.name}'s GGUF header does not say its layers and sizes; it cannot be tuned."
        )
    return ModelShape(info.parameter_count, info.layer_count, info.embedding_length, vocab)


def _hf_shape(model: LocalModel) -> ModelShape:
    config = json.loads((model.path / "config.json").read_text(encoding="utf-8"))
    config = config.get("text_config", config)  # multimodal configs nest the language model's
    width = BYTES_PER_PARAMETER.get(str(config.get("torch_dtype") or config.get("dtype")), 2)
    weights = sum(f.stat().st_size for f in model.path.glob("*.safetensors"))
    return ModelShape(
        weights // width,
        int(config.get("num_hidden_layers") or 0),
        int(config.get("hidden_size") or 0),
        int(config.get("vocab_size") or 0),
    )
