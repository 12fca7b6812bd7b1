"""Wire models for the conversations API (the trust boundary: validated here, stored by the store)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bendi.gateway.json_types import INTEGRAL


class ConversationFields(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # The store refuses a blank title with its own message; the schema says it (some non-space).
    title: str | None = Field(default=None, max_length=200, json_schema_extra={"pattern": r"\S"})
    model: str | None = Field(default=None, max_length=300)
    system_prompt: str | None = Field(default=None, max_length=32_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    context_tokens: Annotated[int, Field(ge=128, le=1_048_576), INTEGRAL] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_048_576), INTEGRAL] | None = None  # answer length
    knowledge_base: str | None = Field(default=None, max_length=200)


class NewMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=2_000_000)
    reasoning: str | None = Field(default=None, max_length=2_000_000)
    citations: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=300)
