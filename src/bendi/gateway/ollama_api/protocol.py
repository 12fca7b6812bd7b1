"""Ollama wire models (requests validated at the trust boundary; unknown fields ignored)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class OllamaMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None


class OllamaBase(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = ""
    stream: bool = True
    options: dict[str, Any] = Field(default_factory=dict)
    keep_alive: str | float | int | None = None
    think: bool | str | None = None
    format: Any = None


class ChatRequest(OllamaBase):
    messages: list[OllamaMessage] = Field(default_factory=list)


class GenerateRequest(OllamaBase):
    prompt: str = ""
    system: str | None = None
    raw: bool = False
    suffix: str | None = None
    images: list[str] | None = None


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = ""
    input: str | list[str] = ""
    truncate: bool = True
    keep_alive: str | float | int | None = None


class LegacyEmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = ""
    prompt: str = ""


class ModelRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = ""
    name: str = ""  # older clients send "name"

    @property
    def target(self) -> str:
        return self.model or self.name


class PullRequest(ModelRequest):
    stream: bool = True
    insecure: bool = False  # Ollama's flag for plain-HTTP registries; bendi's host policy decides
