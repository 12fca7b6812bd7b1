"""The one internal dialect: what every API layer translates requests into and results out of."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    # An assistant turn's reasoning chain, kept apart from its content (templates usually drop it).
    reasoning: str | None = None


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling. `None` max_tokens means: until the context window is full."""

    max_tokens: int | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    # Never end at the end-of-generation token (benchmarks that need fixed-length outputs).
    ignore_eos: bool = False


@dataclass(frozen=True)
class RenderedPrompt:
    """A chat rendered through the model's template, ready to tokenize."""

    text: str
    # True when the template itself opened a reasoning block (R1 distills end the prompt with
    # "<think>\n"), so the model's output starts *inside* the reasoning chain.
    opens_reasoning: bool = False


@dataclass(frozen=True)
class GenerationRequest:
    """Raw-text generation: the API layer renders chats into `prompt` first (Engine.render_chat)."""

    prompt: str
    params: SamplingParams = field(default_factory=SamplingParams)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Who asked (API key or client address): for per-client quotas and logs, never the prompt.
    client_id: str = "anonymous"
    # Special/control tokens in `prompt` (e.g. "<|im_start|>") are parsed as such, as templates need.
    parse_special: bool = True
    # False when the caller waits for the whole answer anyway: an engine may then deliver it in one
    # piece (a replica is asked without streaming, which saves writes and wake-ups on both sides).
    stream: bool = True


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text. Pieces are valid UTF-8; a multi-byte character is never split."""

    text: str
    tokens: int = 1


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Finished:
    """The last event of every generation."""

    finish_reason: FinishReason
    usage: Usage
    # Seconds from admission to first token, and total; for metrics and Ollama's durations.
    time_to_first_token_s: float = 0.0
    # False when the engine gave the whole answer at once (an upstream server asked without
    # streaming): the first token's time is then unknown, and time_to_first_token_s is the whole time.
    first_token_timed: bool = True
    total_time_s: float = 0.0
    prompt_eval_time_s: float = 0.0
    error: str | None = None


GenerationEvent = TextDelta | Finished
