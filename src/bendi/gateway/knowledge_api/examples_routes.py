"""Answered example questions of a knowledge base (/v1/knowledge-bases/{kb}/examples): the pairs
that steer search to their citations (knowledge/examples.py). Reading them is reading the base;
changing them is writing it."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from bendi.gateway.audit_hooks import record_action
from bendi.gateway.dependencies import get_services, readable_kbs
from bendi.gateway.knowledge_api.routes import writable_kb
from bendi.knowledge.examples import MAX_CITATIONS, MAX_QUESTION_CHARS, QUOTE_CHARS, examples_from
from bendi.services import Services

router = APIRouter(prefix="/v1/knowledge-bases", tags=["knowledge bases"])
ServicesDep = Annotated[Services, Depends(get_services)]
MAX_EXAMPLES_PER_REQUEST = 10_000


# The wire shape says what examples.py checks, so a request the schema allows is one it accepts
# (or 404: a cited document, article or quote that is not in the base).
_TEXT = r"\S"  # holds something besides spaces


class CitedArticle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document: Annotated[str, Field(min_length=1, max_length=1000, pattern=_TEXT)] | int = Field(
        description="the document's id or its file as added"
    )
    article: str = Field(min_length=1, max_length=100, pattern=_TEXT, description="e.g. 第十条")


class CitedQuote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document: Annotated[str, Field(min_length=1, max_length=1000, pattern=_TEXT)] | int = Field(
        description="the document's id or its file as added"
    )
    quote: str = Field(min_length=QUOTE_CHARS[0], max_length=QUOTE_CHARS[1], pattern=r"^\S(?s:.*)\S$",
                       description="a passage of the document, found by its first characters")  # fmt: skip


class NewExample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, pattern=_TEXT)
    citations: list[CitedArticle | CitedQuote] = Field(min_length=1, max_length=MAX_CITATIONS)


class NewExamples(BaseModel):
    model_config = ConfigDict(extra="forbid")
    examples: list[NewExample] = Field(min_length=1, max_length=MAX_EXAMPLES_PER_REQUEST)


@router.get("/{kb}/examples")
async def list_examples(
    kb: str,
    request: Request,
    services: ServicesDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """A page of the base's examples in the order they were first stored; `total` counts them all."""
    base = services.knowledge.get(kb, readable_kbs(request))
    total, page = await asyncio.to_thread(base.examples, offset, limit)
    return {"data": [e.to_json() for e in page], "total": total, "offset": offset}


@router.post("/{kb}/examples", status_code=201)
async def add_examples(kb: str, body: NewExamples, request: Request, services: ServicesDep) -> dict[str, Any]:
    base = writable_kb(request, services, kb, "write")
    examples = examples_from([e.model_dump() for e in body.examples])
    stored = await asyncio.to_thread(base.add_examples, examples)
    record_action(request, "kb.examples.add", status=201, kb=base.name, count=stored)
    return {"stored": stored}


@router.delete("/{kb}/examples/{example_id}")
async def delete_example(kb: str, example_id: int, request: Request, services: ServicesDep) -> dict[str, Any]:
    base = writable_kb(request, services, kb, "write")
    await asyncio.to_thread(base.delete_example, example_id)
    record_action(request, "kb.examples.delete", kb=base.name, example_id=example_id)
    return {"deleted": True}
