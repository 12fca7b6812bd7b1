"""/v1/embeddings with the official `openai` client: vectors, base64, and the pooled-fallback label."""

from __future__ import annotations

import base64
import math
import struct

import httpx
import openai

MODEL = "smollm2:135m"


def test_openai_embeddings_from_a_chat_model_are_labelled_as_a_fallback(bendi_server) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=bendi_server.base_url + "/v1", api_key="unused")
    result = client.embeddings.create(
        model=MODEL, input=["煤矿瓦斯检查", "coal mine gas inspection", "今天天气"]
    )
    vectors = [item.embedding for item in result.data]
    assert [item.index for item in result.data] == [0, 1, 2]
    assert len({len(v) for v in vectors}) == 1 and len(vectors[0]) == 576
    assert result.usage.prompt_tokens > 3
    assert all(math.isfinite(x) for v in vectors for x in v)
    as_base64 = client.embeddings.create(model=MODEL, input="煤矿瓦斯检查", encoding_format="base64")
    encoded = as_base64.data[0].embedding
    assert isinstance(encoded, str)  # asked for explicitly, the client hands the base64 text back
    decoded = struct.unpack(f"<{len(vectors[0])}f", base64.b64decode(encoded))
    assert max(abs(a - b) for a, b in zip(decoded, vectors[0], strict=True)) < 1e-3

    raw = httpx.post(
        bendi_server.base_url + "/v1/embeddings", json={"model": MODEL, "input": "x"}, timeout=60
    )
    assert raw.headers["X-Bendi-Embedding-Source"] == "pooled-chat-model"
    assert raw.json()["embedding_source"] == "pooled-chat-model"
    empty = httpx.post(
        bendi_server.base_url + "/v1/embeddings", json={"model": MODEL, "input": []}, timeout=60
    )
    assert empty.status_code == 400 and empty.json()["error"]["type"] == "invalid_request_error"
