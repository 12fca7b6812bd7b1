"""--api-key: API calls need the key; /health stays open for load balancers."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI


def test_api_key_is_required_when_set(bendi_server_factory) -> None:  # type: ignore[no-untyped-def]
    server = bendi_server_factory(args=("--api-key", "s3cret-key"))
    assert httpx.get(server.base_url + "/health").status_code == 200
    denied = httpx.get(server.base_url + "/v1/models")
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "invalid_api_key"
    assert (
        httpx.get(server.base_url + "/v1/models", headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=server.base_url + "/v1", api_key="wrong", max_retries=0).models.list()
    good = OpenAI(base_url=server.base_url + "/v1", api_key="s3cret-key", max_retries=0)
    assert "smollm2:135m" in [m.id for m in good.models.list().data]
