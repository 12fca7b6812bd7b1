"""Where the tuning venv is: the interpreter that runs tune/trainer_main.py and llama.cpp's
convert_lora_to_gguf.py beside it (both installed by scripts/install_tune.sh)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bendi.core.errors import UserInputError

ENV_VAR = "BENDI_TUNE_PYTHON"
INSTALL_HINT = (
    "Install it once with `bash scripts/install_tune.sh` (CPU torch, transformers, peft: a few minutes) "
    f"and set {ENV_VAR} to the path it prints, or `pip install 'bendi[tune]'` and set {ENV_VAR} to that python."
)


@dataclass(frozen=True)
class TuneEnvironment:
    python: Path
    converter: Path  # llama.cpp's convert_lora_to_gguf.py, from the same llama.cpp bendi serves with

    @property
    def trainer(self) -> Path:
        return Path(__file__).with_name("trainer_main.py")


def _cached_pythons() -> list[Path]:
    """Venvs scripts/install_tune.sh left in the cache, newest first."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bendi" / "envs"
    found = [p / "bin" / "python" for p in cache.glob("tune-*") if (p / "bin" / "python").is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def find_environment() -> TuneEnvironment:
    """The configured tuning venv, else the newest cached one; a sentence saying how to install it if none."""
    configured = os.environ.get(ENV_VAR)
    candidates = [Path(configured)] if configured else _cached_pythons()
    if not candidates:
        raise UserInputError(
            f"`bendi tune` needs its training environment, which is not installed. {INSTALL_HINT}"
        )
    python = candidates[0]
    if not python.is_file():
        raise UserInputError(f"{ENV_VAR} is {python}, which does not exist. {INSTALL_HINT}")
    converter = python.parents[1] / "llama.cpp" / "convert_lora_to_gguf.py"
    if not converter.is_file():
        raise UserInputError(
            f"The tuning environment at {python.parents[1]} has no llama.cpp converter ({converter.name}). "
            + INSTALL_HINT
        )
    return TuneEnvironment(python, converter)
