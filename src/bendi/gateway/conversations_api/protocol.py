"""Wire models for the conversations API (the trust boundary: validated here, stored by the store)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ConversationFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=300)
    system_prompt: str | None = Field(default=None, max_length=32_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    context_tokens: int | None = Field(default=None, ge=128, le=1_048_576)
    max_tokens: int | None = Field(default=None, ge=1, le=1_048_576)  # answer length limit
    knowledge_base: str | None = Field(default=None, max_length=200)


class NewMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=2_000_000)
    reasoning: str | None = Field(default=None, max_length=2_000_000)
    citations: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=300)
