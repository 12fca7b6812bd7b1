"""The shape of a catalog family file (families/*.toml), validated at load: catalog files are data."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# GGUF vocabularies of one tokenizer may differ by padding rows (DeepSeek-R1-Distill-Qwen-1.5B has 151,936
# tokens, the 7B 152,064); llama.cpp's draft check and bendi's (engines/llamacpp/draft.py) allow 128.
MAX_VOCAB_PADDING = 128


class ArchitectureSpec(_Strict):
    arch: str
    n_layers: int = Field(gt=0)
    n_embd: int = Field(gt=0)
    n_head: int = Field(gt=0)
    n_head_kv: int = Field(gt=0)
    head_dim_k: int = Field(gt=0)
    head_dim_v: int = Field(gt=0)
    n_ff: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    max_context_tokens: int = Field(gt=0)
    tied_embeddings: bool = False
    # Multi-head latent attention (DeepSeek V2/V3/R1); 0 means ordinary GQA.
    kv_lora_rank: int = Field(default=0, ge=0)
    q_lora_rank: int = Field(default=0, ge=0)
    qk_rope_head_dim: int = Field(default=0, ge=0)
    # Mixture of experts; n_expert 0 means dense.
    n_expert: int = Field(default=0, ge=0)
    n_expert_used: int = Field(default=0, ge=0)
    n_expert_shared: int = Field(default=0, ge=0)
    n_dense_layers: int = Field(default=0, ge=0)
    n_ff_expert: int = Field(default=0, ge=0)
    active_params_b: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> ArchitectureSpec:
        if self.n_head % self.n_head_kv:
            raise ValueError(f"n_head {self.n_head} is not a multiple of n_head_kv {self.n_head_kv}")
        if self.n_expert and not (0 < self.n_expert_used <= self.n_expert and self.active_params_b):
            raise ValueError(
                "a mixture-of-experts model needs n_expert_used (<= n_expert) and active_params_b"
            )
        return self


class VariantSpec(_Strict):
    quant: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")
    size_bytes: int | None = Field(default=None, gt=0)
    size_gb: float | None = Field(default=None, gt=0)
    format: Literal["gguf", "safetensors"] = "gguf"
    hf_repo: str | None = None
    modelscope_repo: str | None = None
    file: str | None = None
    parts: int = Field(default=1, ge=1, le=999)
    folder: str | None = None
    part_template: str | None = None
    # Safetensors (Hugging Face-format) checkpoints: exact per-shard sizes and hashes where a source
    # gives them (then the size is their sum), and the small files a plain mirror must serve.
    shard_bytes: tuple[int, ...] = ()
    shard_sha256: tuple[str, ...] = ()
    extra_files: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _one_size(self) -> VariantSpec:
        if self.shard_bytes:
            if self.size_bytes is not None or self.size_gb is not None:
                raise ValueError(f"variant {self.quant}: shard_bytes already gives the size")
            if len(self.shard_bytes) != self.parts or min(self.shard_bytes) <= 0:
                raise ValueError(f"variant {self.quant}: shard_bytes needs {self.parts} positive sizes")
        elif (self.size_bytes is None) == (self.size_gb is None):
            raise ValueError(f"variant {self.quant}: give exactly one of size_bytes or size_gb")
        if self.shard_sha256 and (
            len(self.shard_sha256) != self.parts
            or not all(len(h) == 64 and all(c in "0123456789abcdef" for c in h) for h in self.shard_sha256)
        ):
            raise ValueError(
                f"variant {self.quant}: shard_sha256 needs {self.parts} lower-case SHA-256 values"
            )
        if self.format == "gguf" and (self.shard_bytes or self.shard_sha256 or self.extra_files is not None):
            raise ValueError(
                f"variant {self.quant}: shard_bytes, shard_sha256 and extra_files are for safetensors"
            )
        return self


class ModelSpec(_Strict):
    display_name: str
    aliases: tuple[str, ...] = ()
    params_b: float = Field(gt=0)
    hf_repo: str
    modelscope_repo: str | None = None
    source: Literal["hub", "bundled"] = "hub"
    file_template: str | None = None
    default_quant: str = "Q4_K_M"
    architecture: ArchitectureSpec
    quants: dict[str, float] = Field(default_factory=dict)  # quant -> size in decimal GB
    variants: tuple[VariantSpec, ...] = ()
    # Models naming the same tokenizer can draft for each other (speculative decoding,
    # catalog/draft_pairing.py); None: the catalog holds no partner for it.
    tokenizer: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9][a-z0-9.\-]*$")

    @model_validator(mode="after")
    def _has_default(self) -> ModelSpec:
        names = set(self.quants) | {v.quant for v in self.variants}
        if not names:
            raise ValueError("a model needs at least one quantization")
        if self.default_quant not in names:
            raise ValueError(f"default_quant {self.default_quant} is not among {sorted(names)}")
        if self.quants and not self.file_template:
            raise ValueError("`quants` needs a file_template with {quant}")
        return self


class FamilySpec(_Strict):
    family: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    display_name: str
    license: str
    reasoning: bool
    default_tag: str
    source: str
    models: dict[str, ModelSpec]

    @model_validator(mode="after")
    def _default_exists(self) -> FamilySpec:
        if self.default_tag not in self.models:
            raise ValueError(f"default_tag {self.default_tag!r} is not one of the models")
        return self

    @model_validator(mode="after")
    def _one_vocabulary_per_tokenizer(self) -> FamilySpec:
        """A tokenizer name is a promise the draft check (engines/llamacpp/draft.py) will keep: vocabularies
        that differ by more than padding cannot be one tokenizer."""
        sizes: dict[str, dict[str, int]] = {}
        for tag, model in self.models.items():
            if model.tokenizer:
                sizes.setdefault(model.tokenizer, {})[tag] = model.architecture.vocab_size
        for name, by_tag in sizes.items():
            if max(by_tag.values()) - min(by_tag.values()) > MAX_VOCAB_PADDING:
                raise ValueError(
                    f"tokenizer {name!r}: vocabulary sizes {by_tag} differ by more than the "
                    f"{MAX_VOCAB_PADDING} padding rows one tokenizer allows"
                )
        return self
