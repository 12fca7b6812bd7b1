"""The model catalog: load and validate the family files, and resolve Ollama-style names to variants."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import ValidationError

from bendi.catalog.schema import ArchitectureSpec, FamilySpec, ModelSpec, VariantSpec
from bendi.core.errors import BendiError, ModelNotFoundError

GB = 10**9


class CatalogError(BendiError):
    """A catalog family file is malformed; bendi ships these files, so this is a packaging bug."""

    code = "catalog_invalid"


@dataclass(frozen=True)
class ModelFile:
    path_in_repo: str
    size_bytes: int
    sha256: str | None = None
    size_exact: bool = True  # False: the size is the hub's rounded display figure (or a split of it)


@dataclass(frozen=True)
class Architecture:
    """The numbers estimates need; field meanings follow llama.cpp's GGUF keys."""

    arch: str
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    vocab_size: int
    max_context_tokens: int
    tied_embeddings: bool = False
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    n_expert: int = 0
    n_expert_used: int = 0
    n_expert_shared: int = 0
    n_dense_layers: int = 0
    n_ff_expert: int = 0
    active_params_b: float | None = None

    @property
    def is_moe(self) -> bool:
        return self.n_expert > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0


@dataclass(frozen=True)
class ModelVariant:
    name: str  # canonical, e.g. "deepseek-r1:7b-q4_K_M"
    family: str
    tag: str
    display_name: str
    params_b: float
    quant: str
    file_bytes: int
    files: tuple[ModelFile, ...]
    hf_repo: str
    modelscope_repo: str | None
    format: Literal["gguf", "safetensors"]
    architecture: Architecture
    license: str
    reasoning: bool
    source: str = "hub"  # "hub" or "bundled"
    tokenizer: str | None = None  # models of one tokenizer can draft for each other (draft_pairing.py)

    @property
    def short_name(self) -> str:
        """The Ollama default-tag spelling when this is the default quant (`deepseek-r1:7b`)."""
        return self.name


@dataclass(frozen=True)
class Family:
    name: str
    display_name: str
    license: str
    reasoning: bool
    default_tag: str
    tags: tuple[str, ...]


def _ollama_quant(quant: str) -> str:
    """Ollama spells quants `q4_K_M`, `q8_0`; other spellings (`f16`, `ud-iq1_s`, `fp8`) are lower case."""
    return "q" + quant[1:] if quant.startswith("Q") else quant.lower()


# What a Hugging Face-format repository needs besides its shards (a mirror has no listing to say so).
HF_SMALL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")
HF_INDEX_FILE = "model.safetensors.index.json"


def _safetensors_files(v: VariantSpec, size_bytes: int, exact: bool) -> tuple[ModelFile, ...]:
    """The shards (sizes: exact per shard, else an even split of the total) and the small files."""
    extras = (
        v.extra_files
        if v.extra_files is not None
        else HF_SMALL_FILES + ((HF_INDEX_FILE,) if v.parts > 1 else ())
    )
    small = [ModelFile(name, 0, None, False) for name in extras]  # sizes unknown: the hub or mirror tells
    template = v.part_template or "model-{index:05d}-of-{count:06d}.safetensors"
    per_part = size_bytes // v.parts
    shards = []
    for index in range(1, v.parts + 1):
        name = template.format(index=index, count=v.parts) if v.parts > 1 else v.file or "model.safetensors"
        if v.shard_bytes:
            part_bytes, part_exact = v.shard_bytes[index - 1], True
        else:
            part_bytes = per_part if index < v.parts else size_bytes - per_part * (v.parts - 1)
            part_exact = exact and v.parts == 1
        sha = v.shard_sha256[index - 1] if v.shard_sha256 else None
        shards.append(ModelFile(f"{v.folder}/{name}" if v.folder else name, part_bytes, sha, part_exact))
    return tuple(small + shards)


def _variant_files(model: ModelSpec, v: VariantSpec, size_bytes: int, exact: bool) -> tuple[ModelFile, ...]:
    if v.format == "safetensors":
        return _safetensors_files(v, size_bytes, exact)
    if v.parts == 1:
        name = v.file or (model.file_template or "{quant}.gguf").format(quant=v.quant)
        return (ModelFile(f"{v.folder}/{name}" if v.folder else name, size_bytes, None, exact),)
    template = v.part_template or f"{v.folder or v.quant}-{{index:05d}}-of-{{count:05d}}.gguf"
    per_part = size_bytes // v.parts
    files = []
    for index in range(1, v.parts + 1):
        name = template.format(index=index, count=v.parts)
        part_bytes = per_part if index < v.parts else size_bytes - per_part * (v.parts - 1)
        files.append(ModelFile(f"{v.folder}/{name}" if v.folder else name, part_bytes, None, False))
    return tuple(files)


def _build_variants(family: FamilySpec) -> list[ModelVariant]:
    out = []
    for tag, model in family.models.items():
        arch = Architecture(**model.architecture.model_dump())
        specs = [VariantSpec(quant=q, size_gb=gb) for q, gb in model.quants.items()] + list(model.variants)
        for v in specs:
            exact = v.size_bytes is not None or bool(v.shard_bytes)
            size_bytes = (
                sum(v.shard_bytes)
                if v.shard_bytes
                else v.size_bytes
                if v.size_bytes is not None
                else round((v.size_gb or 0) * GB)
            )
            out.append(
                ModelVariant(
                    name=f"{family.family}:{tag}-{_ollama_quant(v.quant)}",
                    family=family.family,
                    tag=tag,
                    display_name=model.display_name,
                    params_b=model.params_b,
                    quant=v.quant,
                    file_bytes=size_bytes,
                    files=_variant_files(model, v, size_bytes, exact),
                    hf_repo=v.hf_repo or model.hf_repo,
                    modelscope_repo=v.modelscope_repo or model.modelscope_repo,
                    format=v.format,
                    architecture=arch,
                    license=family.license,
                    reasoning=family.reasoning,
                    source=model.source,
                    tokenizer=model.tokenizer,
                )
            )
    return out


def parse_family(text: str, origin: str) -> FamilySpec:
    """Validate one family file; errors name the file and the offending field."""
    try:
        return FamilySpec.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"Catalog file {origin} is not valid TOML: {exc}. Reinstall bendi.") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise CatalogError(f"Catalog file {origin} is invalid ({problems}). Reinstall bendi.") from exc


class Catalog:
    """All families and their variants; immutable once built."""

    def __init__(self, families: list[FamilySpec]) -> None:
        self._families = tuple(families)
        self._variants = tuple(v for f in families for v in _build_variants(f))
        self._by_name = {v.name.lower(): v for v in self._variants}
        self._aliases: dict[tuple[str, str], str] = {}  # (family, alias-or-tag) -> tag
        for f in families:
            for tag, model in f.models.items():
                self._aliases[(f.family, tag.lower())] = tag
                for alias in model.aliases:
                    self._aliases[(f.family, alias.lower())] = tag
        self._specs = {f.family: f for f in families}

    def families(self) -> list[Family]:
        return [
            Family(f.family, f.display_name, f.license, f.reasoning, f.default_tag, tuple(f.models))
            for f in self._families
        ]

    def variants(self) -> list[ModelVariant]:
        return list(self._variants)

    def _find(self, family: str, tag: str, quant: str) -> ModelVariant | None:
        return self._by_name.get(f"{family}:{tag}-{quant}".lower())

    def resolve(self, name: str) -> ModelVariant:
        """`deepseek-r1:7b`, `deepseek-r1:70b-q8_0`, `deepseek-r1:671b-ud-iq1_s`, `smollm2:135m`, `deepseek-r1`."""
        raw = name.strip()
        lowered = raw.lower()
        family, _, rest = lowered.partition(":")
        if family in self._specs:
            spec = self._specs[family]
            if rest in ("", "latest"):
                rest = spec.default_tag.lower()
            # Longest alias first, so "8b-llama-distill-q8_0" is not read as tag "8b" + quant "llama-...".
            for alias in sorted((a for (fam, a) in self._aliases if fam == family), key=len, reverse=True):
                tag = self._aliases[(family, alias)]
                if rest == alias:
                    found = self._find(family, tag, _ollama_quant(spec.models[tag].default_quant))
                elif rest.startswith(alias + "-"):
                    found = self._find(family, tag, rest[len(alias) + 1 :])
                else:
                    continue
                if found is not None:
                    return found
        raise ModelNotFoundError(self._not_found_message(raw))

    def hf_variant(self, variant: ModelVariant) -> ModelVariant | None:
        """The publisher-format (safetensors) checkpoint of the same model: BF16 where listed, else FP8."""
        found = [
            v
            for v in self._variants
            if v.family == variant.family and v.tag == variant.tag and v.format == "safetensors"
        ]
        order = {"BF16": 0, "FP8": 1}
        return min(found, key=lambda v: order.get(v.quant.upper(), 2), default=None)

    def names_quant(self, name: str) -> bool:
        """Whether `name` spells a quant (`deepseek-r1:70b-q8_0`) rather than only a model (`deepseek-r1:70b`)."""
        family, _, rest = name.strip().lower().partition(":")
        if family not in self._specs or rest in ("", "latest"):
            return False
        return (family, rest) not in self._aliases

    def _not_found_message(self, raw: str) -> str:
        choices = [v.name for v in self._variants]
        choices += [f"{f}:{a}" for (f, a) in self._aliases]
        close = difflib.get_close_matches(raw.lower(), [c.lower() for c in choices], n=4, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return (
            f"{raw!r} is not in the model catalog.{hint} Run `bendi plan` to list the models "
            "and which fit this machine."
        )


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The catalog shipped in bendi.catalog/families (a pure function of the package data)."""
    folder = resources.files("bendi.catalog") / "families"
    families = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            families.append(parse_family(entry.read_text(encoding="utf-8"), entry.name))
    if not families:
        raise CatalogError("The model catalog is empty (no families/*.toml in the package). Reinstall bendi.")
    return Catalog(families)


__all__ = [
    "Architecture",
    "ArchitectureSpec",
    "Catalog",
    "CatalogError",
    "Family",
    "ModelFile",
    "ModelVariant",
    "load_catalog",
    "parse_family",
]
