"""What to fetch for a model reference: local name, per-hub repos, and the files with known hashes.

GGUF plans name their files. Hugging Face-format plans (format "hf") fetch a whole repository: the
hub's listing decides the files, and the catalog's file list (if any) is what a plain mirror serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bendi.core.errors import InvalidModelFileError, ModelNotFoundError, UserInputError
from bendi.store.formats import PICKLE_SUFFIXES
from bendi.store.local_model import ModelFormat
from bendi.store.reference import (
    ModelName,
    is_hub_reference,
    is_repo_reference,
    parse_hub_file,
    parse_hub_repo,
    parse_model_name,
    split_parts,
)

if TYPE_CHECKING:
    from bendi.catalog.catalog import ModelVariant


@dataclass(frozen=True)
class WantedFile:
    path_in_repo: str
    size_bytes: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class PullPlan:
    name: ModelName
    repos: dict[str, str]  # source name -> repo ("owner/name"); mirrors use the Hugging Face repo
    files: tuple[WantedFile, ...]  # HF format: the catalog's list (for mirrors), may be empty
    reference: str  # what the user typed, normalised
    format: ModelFormat = "gguf"

    @property
    def file_name(self) -> str:
        return self.files[0].path_in_repo.rsplit("/", 1)[-1]


def plan_pull(
    reference: str, *, quant: str | None = None, name: str | None = None, model_format: str | None = None
) -> PullPlan:
    """Turn `hf:o/r/f.gguf`, `hf:o/r` (a whole HF-format repository) or a catalog name into a PullPlan."""
    if model_format not in (None, "gguf", "hf"):
        raise UserInputError(f"Unknown model format {model_format!r}; use gguf or hf.")
    if is_repo_reference(reference) or (is_hub_reference(reference) and model_format == "hf"):
        if not is_repo_reference(reference):
            raise UserInputError(
                f"{reference!r} names one file; a Hugging Face-format pull takes a whole repository: "
                "hf:OWNER/REPO (or modelscope:OWNER/REPO)."
            )
        if model_format == "gguf":
            raise UserInputError(
                f"{reference!r} is a whole repository; a GGUF pull needs hf:OWNER/REPO/FILE.gguf."
            )
        hub_repo = parse_hub_repo(reference)
        repos = {hub_repo.hub: hub_repo.repo} | (
            {"mirror": hub_repo.repo} if hub_repo.hub == "huggingface" else {}
        )
        local = parse_model_name(name) if name is not None else hub_repo.default_model_name()
        return PullPlan(local, repos, (), hub_repo.reference, "hf")
    if is_hub_reference(reference):
        hub_file = parse_hub_file(reference)
        folder, _, file_name = hub_file.path_in_repo.rpartition("/")
        parts = split_parts(file_name) or [file_name]
        files = tuple(WantedFile(f"{folder}/{p}" if folder else p) for p in parts)
        repos = {hub_file.hub: hub_file.repo}
        if hub_file.hub == "huggingface":
            repos["mirror"] = hub_file.repo
        local = parse_model_name(name) if name is not None else hub_file.default_model_name()
        plan = PullPlan(local, repos, files, f"{'hf' if hub_file.hub == 'huggingface' else 'modelscope'}:"
                        f"{hub_file.repo}/{hub_file.path_in_repo}")  # fmt: skip
    else:
        plan = _catalog_plan(reference, quant, name, model_format)
    if plan.format == "hf":
        return plan  # the file selection (hf_files.select_files) refuses pickles and code
    for wanted in plan.files:
        lowered = wanted.path_in_repo.lower()
        if lowered.endswith(PICKLE_SUFFIXES):
            raise InvalidModelFileError(
                f"{wanted.path_in_repo} is a pickle-based checkpoint, which can run code when loaded; "
                "bendi only downloads GGUF (and safetensors for vLLM)."
            )
        if not lowered.endswith((".gguf", ".safetensors")):
            raise InvalidModelFileError(
                f"{wanted.path_in_repo} is not a .gguf file; bendi pulls GGUF models."
            )
    return plan


def _catalog_plan(reference: str, quant: str | None, name: str | None, model_format: str | None) -> PullPlan:
    wanted_name = parse_model_name(reference)  # validates before the catalog sees it
    query = str(wanted_name) if ":" in reference else wanted_name.name
    if quant:
        query = f"{query}-{quant}" if ":" in query else f"{query}:{quant}"
    try:
        from bendi.catalog.catalog import load_catalog
    except ImportError as exc:
        raise ModelNotFoundError(
            f"The model catalog is not available, so {reference!r} cannot be looked up. "
            "Pull a file directly: bendi pull hf:OWNER/REPO/FILE.gguf"
        ) from exc
    try:
        catalog = load_catalog()
        variant = catalog.resolve(query)
    except LookupError as exc:  # the catalog raises ModelNotFoundError (with suggestions) itself
        raise ModelNotFoundError(
            f"{query!r} is not in the catalog. Run `bendi plan` to list models."
        ) from exc
    if model_format == "hf" and variant.format == "gguf":
        hf = catalog.hf_variant(variant)
        if hf is None or catalog.names_quant(query):
            raise ModelNotFoundError(
                f"{variant.name} is a GGUF quant; the catalog has no Hugging Face-format checkpoint of "
                f"{variant.display_name}." if hf is None else
                f"{query!r} names a GGUF quant; for the Hugging Face-format checkpoint pull {hf.name}."
            )  # fmt: skip
        variant = hf
    elif model_format == "gguf" and variant.format != "gguf":
        raise UserInputError(
            f"{variant.name} is a Hugging Face-format checkpoint, not a GGUF; drop --format gguf."
        )
    return _variant_plan(variant, name)


def _variant_plan(variant: ModelVariant, name: str | None) -> PullPlan:
    repos: dict[str, str] = {}
    if variant.hf_repo:
        repos["huggingface"] = variant.hf_repo
        repos["mirror"] = variant.hf_repo
    if variant.modelscope_repo:
        repos["modelscope"] = variant.modelscope_repo
    files = tuple(
        WantedFile(f.path_in_repo, f.size_bytes if f.size_exact else None, f.sha256) for f in variant.files
    )
    if not files:
        raise ModelNotFoundError(f"The catalog lists no files for {variant.name!r}.")
    for f in files:  # catalog files are data, not code: validate every component like user input
        parse_hub_file(f"hf:{repos.get('huggingface') or repos.get('modelscope')}/{f.path_in_repo}")
    local = parse_model_name(name if name is not None else variant.name)
    return PullPlan(local, repos, files, variant.name, "hf" if variant.format == "safetensors" else "gguf")
