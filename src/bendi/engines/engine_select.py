"""Which engine and which installed weights serve a model name, with the reason (pure decision; probing in engine_advice.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bendi.core.errors import BendiError, EngineError, ModelNotFoundError, UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.engines.hf_model import is_hf_model_dir
from bendi.engines.protocol import Engine
from bendi.store.resolve import LocalModel, installed_models

log = logging.getLogger("bendi.engines")
EngineKind = Literal["llama.cpp", "vllm", "sglang"]
ServerKind = Literal["vllm", "sglang"]
_last_logged: dict[str, tuple[str, str]] = {}


def is_hf_model(model: LocalModel) -> bool:
    """A Hugging Face-format model (a directory with config.json): the store's `format == "hf"`
    models, or a directory given by path."""
    return getattr(model, "format", "") == "hf" or is_hf_model_dir(model.path)


def hf_directory_model(path: Path) -> LocalModel:
    """A Hugging Face-format directory given by path, named after the directory."""
    path = path.resolve()
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return LocalModel(
        name=path.name, path=path, size_bytes=size, source="file", modified_s=path.stat().st_mtime
    )


@dataclass(frozen=True)
class Advice:
    """What the advisor says about serving HF-format weights on this machine (engine_advice.py)."""

    prefer_server: bool  # True: vLLM/SGLang with the HF weights; False: llama.cpp with a GGUF
    server: ServerKind  # the server engine the advisor names for the HF weights
    reason: str  # the advisor's reasons, as one text
    not_installed: Mapping[str, str]  # server kind -> why it cannot run here ("not installed in ...")


@dataclass(frozen=True)
class EngineDecision:
    model: LocalModel
    kind: EngineKind
    reason: str


def _installed_server(advice: Advice) -> tuple[ServerKind | None, str]:
    """The advisor's server engine if installed, else the other one if installed, with what was skipped."""
    other: ServerKind = "sglang" if advice.server == "vllm" else "vllm"
    if advice.server not in advice.not_installed:
        return advice.server, ""
    missing = f"{advice.server} is {advice.not_installed[advice.server]}"
    if other not in advice.not_installed:
        return other, f"{missing}, so {other}, which is installed"
    return None, f"{missing}, and {other} is {advice.not_installed[other]}"


def decide(candidates: Sequence[LocalModel], choice: str, advice: Advice | None) -> EngineDecision:
    """The engine and weights for one model name. `candidates` are its installed forms (a GGUF, an
    HF-format directory, or both); `choice` is auto, llama.cpp, vllm or sglang; `advice` is needed
    only for auto with an HF-format candidate. Never picks a server engine that is not installed."""
    if not candidates:
        raise ModelNotFoundError("No installed model to choose an engine for.")
    ggufs = [m for m in candidates if not is_hf_model(m)]
    hfs = [m for m in candidates if is_hf_model(m)]
    if choice == "llama.cpp":
        if ggufs:
            return EngineDecision(
                ggufs[0], "llama.cpp", f"engine llama.cpp was asked for: the GGUF {ggufs[0].name}."
            )
        raise UserInputError(
            f"{hfs[0].name} is a Hugging Face-format model ({hfs[0].path}), and llama.cpp needs a GGUF file. "
            "Serve it with --engine vllm (or auto), or use a GGUF of the same model."
        )
    if choice in ("vllm", "sglang"):
        kind: EngineKind = "sglang" if choice == "sglang" else "vllm"
        if hfs:
            return EngineDecision(
                hfs[0], kind, f"engine {choice} was asked for: the HF-format weights {hfs[0].name}."
            )
        return EngineDecision(
            ggufs[0], "llama.cpp",
            f"engine {choice} was asked for, but {ggufs[0].name} is a GGUF file, which only llama.cpp runs.",
        )  # fmt: skip
    if not hfs:
        return EngineDecision(ggufs[0], "llama.cpp", f"{ggufs[0].name} is a GGUF file: llama.cpp.")
    if advice is None:
        raise EngineError(
            "Choosing an engine for HF-format weights needs the advisor's view of this machine."
        )
    server, skipped = _installed_server(advice)
    if ggufs and (not advice.prefer_server or server is None):
        why = advice.reason if not advice.prefer_server else f"{advice.reason} But {skipped}."
        return EngineDecision(ggufs[0], "llama.cpp", f"{why} So the GGUF {ggufs[0].name} on llama.cpp.")
    if server is None:
        raise EngineError(
            f"Cannot serve {hfs[0].name}: it is only installed in Hugging Face format, and {skipped}. "
            f"Install vLLM (`bash scripts/install_vllm.sh`, then BENDI_VLLM_PYTHON), or pull a GGUF of it "
            "for llama.cpp."
        )
    why = (
        advice.reason
        if advice.prefer_server
        else f"Only the HF-format weights are installed ({advice.reason})"
    )
    if skipped:
        why += f" ({skipped})"
    return EngineDecision(hfs[0], server, f"{why.rstrip('.')}. So {hfs[0].name} on {server}.")


def choose_engine(model: LocalModel, choice: str, advice: Advice | None = None) -> EngineKind:
    """The engine for one installed model under `choice` (kept for callers that have only one form)."""
    return decide([model], choice, advice).kind


def _family_tag(name: str) -> tuple[str, str] | None:
    from bendi.catalog.catalog import load_catalog

    try:
        variant = load_catalog().resolve(name)
    except (BendiError, LookupError, ValueError):
        return None
    return variant.family, variant.tag


def _same_model(model: LocalModel, wanted: tuple[str, str]) -> bool:
    """`model` is a variant of catalog model `wanted`; an HF-format variant the catalog does not list
    yet counts when its name extends the catalog name (deepseek-r1:7b-bf16)."""
    found = _family_tag(model.name)
    if found is not None:
        return found == wanted
    return model.name.startswith(f"{wanted[0]}:{wanted[1]}-") and is_hf_model(model)


def candidates_for(asked: str, resolve: Callable[[str], LocalModel], paths: DataPaths) -> list[LocalModel]:
    """The installed forms of `asked`: the exact model when it names one (a path, a full store name),
    else every installed variant of the same catalog model (deepseek-r1:7b finds -q4_K_M and -bf16)."""
    try:
        exact: LocalModel | None = resolve(asked)
    except ModelNotFoundError:
        exact = None
    if exact is not None and (exact.name == asked or exact.source in ("file", "bundled", "upstream")):
        return [exact]
    wanted = _family_tag(asked)
    siblings = [] if wanted is None else [m for m in installed_models(paths) if _same_model(m, wanted)]
    found = ([exact] if exact else []) + [m for m in siblings if exact is None or m.name != exact.name]
    if not found:
        resolve(asked)  # raises the store's own "not installed" sentence
    return found


def engine_choice_for(asked: str, model_names: Sequence[str], choice: str | None, settings: Settings) -> str:
    """The call's choice, else the model's `[models."NAME"] engine`, else settings.engine."""
    if choice:
        return choice
    for name in (asked, *model_names):
        entry = settings.models.get(name)
        if entry is not None and entry.engine:
            return entry.engine
    return settings.engine


def select_engine(
    asked: str,
    choice: str | None,
    resolve: Callable[[str], LocalModel],
    settings: Settings,
    paths: DataPaths,
) -> EngineDecision:
    """The pool's entry point: gather the installed forms, ask the advisor when it matters, log why."""
    from bendi.engines.engine_advice import advise

    found = candidates_for(asked, resolve, paths)
    if found[0].source == "upstream":  # replicas elsewhere (engines/replicas): no local engine to choose
        return EngineDecision(found[0], "llama.cpp", "served by upstream replicas")
    chosen = engine_choice_for(asked, [m.name for m in found], choice, settings)
    needs_advice = chosen == "auto" and any(is_hf_model(m) for m in found)
    decision = decide(found, chosen, advise(found, settings) if needs_advice else None)
    if (needs_advice or len(found) > 1) and _last_logged.get(asked) != (decision.model.name, decision.kind):
        _last_logged[asked] = (decision.model.name, decision.kind)  # once per change, not per request
        log.info(
            "engine chosen",
            extra={"model": decision.model.name, "engine": decision.kind, "reason": decision.reason},
        )
    return decision


async def start_server(model: LocalModel, kind: EngineKind, settings: Settings, paths: DataPaths) -> Engine:
    from bendi.engines.server_engine import start_server_engine

    if kind == "llama.cpp":
        raise EngineError("llama.cpp is not a server engine")  # never: decide() keeps them apart
    return await start_server_engine(model.name, model.path, kind, settings, paths)
