"""Which draft model proposes tokens for a llama.cpp model (speculative decoding), and the mode
speculation then runs in: `[models."NAME"] draft_model`, else `draft_model` (BENDI_DRAFT_MODEL,
`bendi serve --draft`)."""

from __future__ import annotations

from dataclasses import dataclass

from bendi.core.errors import ModelNotFoundError, UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.store.resolve import LocalModel, resolve_model


@dataclass(frozen=True)
class DraftChoice:
    model: LocalModel
    # Named for this very model: a draft of another tokenizer is an error. The server-wide draft
    # is for the models of its own family; another model is served without it.
    strict: bool


def draft_for(model: LocalModel, settings: Settings) -> DraftChoice | None:
    """The draft for `model`, resolved like any model name; None when there is none, or when the
    draft is the model itself (asking for the draft by name serves it plainly)."""
    own = settings.models.get(model.name)
    name = own.draft_model if own is not None and own.draft_model else settings.draft_model
    if not name:
        return None
    try:
        draft = resolve_model(DataPaths(settings.home), name)
    except ModelNotFoundError as exc:  # the operator's setting, not the model the client asked for
        raise UserInputError(f"The draft model {name!r} for {model.name} cannot be found: {exc}") from exc
    if draft.format != "gguf":
        raise UserInputError(
            f"The draft model {name!r} is a Hugging Face-format folder; bendi drafts with a GGUF on "
            "llama.cpp (vLLM and SGLang have speculative decoding of their own: pass it in engine_args)."
        )
    if draft.path.resolve() == model.path.resolve():
        return None
    return DraftChoice(draft, strict=own is not None and bool(own.draft_model))
