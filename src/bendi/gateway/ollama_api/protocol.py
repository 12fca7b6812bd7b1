"""Ollama wire models (requests validated at the trust boundary; unknown fields ignored).

Strict: JSON types are taken as the schema says (no 0 for false). Limits the routes enforce with
their own message are stated in the schema too (`json_schema_extra`), so /openapi.json never calls
a request valid that is then refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, WithJsonSchema, with_config
from typing_extensions import TypedDict

from bendi.gateway.json_types import JsonInt

# translate.keep_alive_seconds: "5m", "30s", "1h", "250ms", a bare number of seconds, or "" (default).
DURATION_PATTERN = r"^(\s*-?\d+(\.\d+)?\s*(ms|s|m|h)?\s*)?$"
KeepAlive = Annotated[str, Field(json_schema_extra={"pattern": DURATION_PATTERN})] | float | int | None
NO_IMAGES: dict[str, Any] = {"maxItems": 0}  # "This model does not accept images" (translate, routes)


@with_config(ConfigDict(extra="allow", strict=True))
class OllamaOptions(TypedDict, total=False):
    """The options translate.to_sampling reads, typed; others (num_ctx, mirostat, ...) are ignored."""

    temperature: float
    top_p: float
    top_k: JsonInt
    min_p: float
    num_predict: JsonInt  # -1: no limit, -2: fill the context
    seed: JsonInt | None  # -1 or null: random
    stop: str | list[str] | None
    presence_penalty: float
    frequency_penalty: float
    repeat_penalty: float


OPTIONS = TypeAdapter(OllamaOptions)


class OllamaMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = Field(default=None, json_schema_extra=NO_IMAGES)


def _checked_options(options: dict[str, Any]) -> dict[str, Any]:
    OPTIONS.validate_python(options)
    return options


class OllamaBase(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    model: str = ""
    stream: bool = True
    # Checked here, whether or not the request generates (a load-only request must refuse them too).
    options: Annotated[dict[str, Any], AfterValidator(_checked_options), WithJsonSchema(
        OPTIONS.json_schema())] = Field(default_factory=dict)  # fmt: skip
    keep_alive: KeepAlive = None
    think: bool | str | None = None
    format: Any = Field(default=None, json_schema_extra={"enum": [None, ""]})  # JSON mode: not yet


class ChatRequest(OllamaBase):
    messages: list[OllamaMessage] = Field(default_factory=list)


class GenerateRequest(OllamaBase):
    prompt: str = ""
    system: str | None = None
    raw: bool = False
    suffix: str | None = None
    images: list[str] | None = Field(default=None, json_schema_extra=NO_IMAGES)


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    model: str = ""
    input: str | Annotated[list[str], Field(json_schema_extra={"minItems": 1})] = ""
    truncate: bool = True
    keep_alive: KeepAlive = None


class LegacyEmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    model: str = ""
    prompt: str = ""


class ModelRequest(BaseModel):
    # Either field names the model; one of them must (the routes say so in their own words).
    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra={"anyOf": [
        {"required": ["model"], "properties": {"model": {"minLength": 1}}},
        {"required": ["name"], "properties": {"name": {"minLength": 1}}},
    ]})  # fmt: skip
    model: str = ""
    name: str = ""  # older clients send "name"

    @property
    def target(self) -> str:
        return self.model or self.name


class PullRequest(ModelRequest):
    stream: bool = True
    insecure: bool = False  # Ollama's flag for plain-HTTP registries; bendi's host policy decides
