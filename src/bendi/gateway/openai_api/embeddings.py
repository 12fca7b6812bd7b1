"""POST /v1/embeddings (OpenAI shape) over Engine.embed."""

from __future__ import annotations

import base64
import struct
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from bendi.core.errors import UserInputError
from bendi.gateway.audit_hooks import record_usage
from bendi.gateway.dependencies import get_services
from bendi.gateway.generation import admitted
from bendi.services import Services

router = APIRouter(prefix="/v1", tags=["openai"])
MAX_INPUTS = 2048


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    model: str | None = None
    # 1 to MAX_INPUTS strings: checked by the route (its message), stated here for the schema.
    input: str | Annotated[list[str], Field(json_schema_extra={"minItems": 1, "maxItems": MAX_INPUTS})]
    encoding_format: Literal["float", "base64"] = "float"


@router.post("/embeddings")
async def create_embeddings(
    body: EmbeddingsRequest,
    request: Request,
    response: Response,
    services: Annotated[Services, Depends(get_services)],
) -> dict[str, Any]:
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > MAX_INPUTS:
        raise UserInputError(f"`input` must hold 1 to {MAX_INPUTS} strings (token arrays are not supported).")
    async with admitted(request, services, body.model) as engine:
        vectors = await engine.embed(texts)
    data = []
    for index, vector in enumerate(vectors):
        embedding: Any = vector
        if body.encoding_format == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    result: dict[str, Any] = {
        "object": "list",
        "model": engine.info.model_name,
        "data": data,
        "usage": {"prompt_tokens": sum(engine.count_tokens(t) for t in texts), "total_tokens": 0},
    }
    result["usage"]["total_tokens"] = result["usage"]["prompt_tokens"]
    record_usage(request, engine.info.model_name, result["usage"]["prompt_tokens"], 0)
    if engine.info.embeddings_are_fallback:
        # A chat model's mean-pooled hidden states, not a trained embedding model: say so.
        response.headers["X-Bendi-Embedding-Source"] = "pooled-chat-model"
        result["embedding_source"] = "pooled-chat-model"
    return result
