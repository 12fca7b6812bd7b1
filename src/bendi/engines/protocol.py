"""The Engine seam: what the gateway, CLI and knowledge layer may ask of any inference engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bendi.engines.messages import ChatMessage, GenerationEvent, GenerationRequest, RenderedPrompt


@dataclass(frozen=True)
class EngineInfo:
    """What a loaded model is, for /v1/models, /api/ps, /api/show and the UI."""

    model_name: str
    engine: str  # "llama.cpp", "vllm", "sglang", "upstream"
    context_tokens: int
    architecture: str = ""
    parameters: int | None = None
    quantization: str = ""
    file_bytes: int = 0
    memory_bytes: int = 0  # what loading it costs (weights + KV + buffers), best estimate
    supports_embeddings: bool = False
    # True when embeddings come from a chat model's pooled hidden states (a labelled fallback).
    embeddings_are_fallback: bool = False


@runtime_checkable
class Engine(Protocol):
    """One loaded model. Implementations must never block the event loop.

    `generate` yields TextDelta events then exactly one Finished event. Closing the async
    iterator early (client disconnected) cancels the generation and frees its resources.
    It raises ContextOverflowError before yielding anything when the prompt does not fit.
    """

    @property
    def info(self) -> EngineInfo: ...

    def render_chat(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt: ...

    def count_tokens(self, text: str, *, parse_special: bool = True) -> int: ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def close(self) -> None: ...
