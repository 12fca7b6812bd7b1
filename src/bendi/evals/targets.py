"""What is being evaluated: a plain model (or preset), or a model answering from a knowledge base.

`kb:NAME` (the name every API client uses) and `--kb NAME` both answer through the same grounded
pipeline as the knowledge-base chat APIs (knowledge/answer.py): retrieve, refuse before the model is
called when nothing relevant is found, otherwise answer from numbered sources. The citations
returned are the sources the model was given; which of them it actually cited is read from its
[n] markers when scoring.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from bendi.access.scope import KbScope
from bendi.core.errors import UserInputError
from bendi.engines.messages import ChatMessage, SamplingParams
from bendi.engines.protocol import Engine, EngineInfo
from bendi.evals.timed_generation import TimedGeneration, generate_timed
from bendi.knowledge.answer import ground, refusal_text
from bendi.services import Services

KB_PREFIX = "kb:"


@dataclass(frozen=True)
class Source:
    """A source handed to the model: its [index], file and article."""

    index: int
    file: str
    article: str | None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "file": self.file, "article": self.article}


@dataclass(frozen=True)
class ModelAnswer:
    generation: TimedGeneration | None  # None when the knowledge base refused before any model ran
    sources: tuple[Source, ...] = ()
    refused_by_kb: bool = False
    refusal: str = ""

    @property
    def text(self) -> str:
        return self.refusal if self.generation is None else self.generation.content


@dataclass
class Target:
    """One column of the report: `label` as the user wrote it, answered by `model` (None: default)."""

    label: str
    model: str | None
    knowledge_base: str | None = None
    system: str | None = None  # a preset's system prompt and few-shot turns come along
    history: tuple[ChatMessage, ...] = ()
    sampling: dict[str, Any] = field(default_factory=dict)
    info: EngineInfo | None = None  # filled once the engine is loaded

    async def answer(
        self, services: Services, scope: KbScope, question: str, params: SamplingParams
    ) -> ModelAnswer:
        params = SamplingParams(**{**params.__dict__, **self.sampling})

        async def acquire() -> Engine:
            engine = await services.engines.acquire(self.model)
            self.info = engine.info
            return engine

        if self.knowledge_base is None:
            messages = [*([ChatMessage("system", self.system)] if self.system else []), *self.history,
                        ChatMessage("user", question)]  # fmt: skip
            return ModelAnswer(await generate_timed(await acquire(), messages, params))
        kb = services.knowledge.get(self.knowledge_base, scope)
        answer_tokens = params.max_tokens or 512
        grounded, engine = await ground(kb, question, acquire, max_tokens=answer_tokens,
                                        min_score=services.settings.kb_min_similarity)  # fmt: skip
        sources = tuple(Source(c.index, c.hit.file, c.hit.article) for c in grounded.citations)
        if grounded.refused or engine is None:
            return ModelAnswer(None, sources, refused_by_kb=True, refusal=refusal_text(question))
        limited = SamplingParams(**{**params.__dict__, "max_tokens": grounded.answer_tokens})
        return ModelAnswer(await generate_timed(engine, grounded.messages, limited), sources)


def _preset(services: Services, name: str) -> Any | None:
    """The preset of that name, when the presets feature is installed and one exists."""
    try:
        presets = importlib.import_module("bendi.store.presets")
    except ImportError:  # presets land in the store separately; plain model names work without them
        return None
    return presets.find_preset(services.paths, name)


# Preset PARAMETER names (Ollama's) that map onto SamplingParams; temperature is left out on purpose:
# an evaluation compares models at the run's temperature (0 by default), or the scores are noise.
_PRESET_SAMPLING = {"top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repeat_penalty",
                    "stop": "stop", "num_predict": "max_tokens"}  # fmt: skip


def make_target(services: Services, label: str, knowledge_base: str | None) -> Target:
    """`kb:NAME`, a preset, or a plain model; `knowledge_base` (from --kb) grounds any of them."""
    if label.startswith(KB_PREFIX):
        if not label[len(KB_PREFIX) :]:
            raise UserInputError("Name the knowledge base after kb:, e.g. --model kb:mining.")
        return Target(label, None, knowledge_base=label[len(KB_PREFIX) :])
    preset = _preset(services, label)
    if preset is None:
        return Target(label, label, knowledge_base=knowledge_base)
    sampling: dict[str, Any] = {}
    for key, value in (preset.parameters or {}).items():
        if key in _PRESET_SAMPLING:
            sampling[_PRESET_SAMPLING[key]] = tuple(value) if key == "stop" else value
    history = tuple(ChatMessage(m["role"], m["content"]) for m in (preset.messages or []))
    return Target(label, label, knowledge_base=knowledge_base or preset.knowledge_base,
                  system=preset.system, history=history, sampling=sampling)  # fmt: skip
