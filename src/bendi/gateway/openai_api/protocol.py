"""OpenAI wire models (requests validated at the trust boundary; unknown fields ignored).

Strict: JSON types are taken as the schema says (no 0 for false, no "1" for 1). Limits the
translator enforces with its own message are stated in the schema too (`json_schema_extra`), so
/openapi.json never calls a request valid that is then refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bendi.gateway.json_types import INTEGRAL, JsonInt

ReasoningFormat = Literal["auto", "deepseek", "raw", "none", "parsed"]
MAX_STOPS = 16


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: str = Field(json_schema_extra={"enum": ["text"]})  # others: 400 from translate._text_of
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    include_usage: bool = False


class SamplingFields(BaseModel):
    """Parameters shared by /v1/chat/completions and /v1/completions (plus llama.cpp extras)."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str | None = None
    max_tokens: Annotated[int, Field(ge=1), INTEGRAL] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: Annotated[int, Field(ge=0), INTEGRAL] | None = None
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, gt=0.0)
    seed: JsonInt | None = None
    stop: str | Annotated[list[str], Field(json_schema_extra={"maxItems": MAX_STOPS})] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    n: JsonInt | None = Field(default=None, json_schema_extra={"minimum": 1, "maximum": 1})  # one choice
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    ignore_eos: bool = False  # llama-server/vLLM extension, for fixed-length benchmarks


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_completion_tokens: Annotated[int, Field(ge=1), INTEGRAL] | None = None
    # How reasoning is returned: "auto"/"deepseek"/"parsed" split it out, "raw"/"none" leave the
    # <think> tags in `content` (llama-server's names are accepted too).
    reasoning_format: ReasoningFormat = "auto"
    knowledge_base: str | None = None


class CompletionRequest(SamplingFields):
    # One prompt per request; the route says so in its own words, the schema in these limits.
    prompt: str | Annotated[list[str], Field(json_schema_extra={"minItems": 1, "maxItems": 1})]
    echo: bool = Field(default=False, json_schema_extra={"enum": [False]})  # not supported
    suffix: str | None = Field(default=None, json_schema_extra={"maxLength": 0})  # not supported


def usage_payload(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }
