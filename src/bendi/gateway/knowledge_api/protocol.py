"""Wire models of the knowledge-base API (the trust boundary: validated here, plain values inside)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CreateKnowledgeBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The name as people say it, in any script ("煤矿安全法规"); bendi derives the ASCII identifier
    # used in URLs and paths (library.KnowledgeBases.create checks and normalizes it).
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    embedding_model: str | None = None


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=8000)
    top_k: int = Field(default=5, ge=1, le=100)
    document_ids: list[int] | None = None
    tags: list[str] | None = None
    mode: str = Field(default="hybrid", pattern="^(hybrid|bm25|dense)$")


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=8000)
    model: str | None = None
    stream: bool = False
    top_k: int = Field(default=5, ge=1, le=50)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    document_ids: list[int] | None = None
