"""vLLM's and SGLang's own routes (/pause, /collective_rpc, /v1/load_lora_adapter, ...) are never reachable
through bendi: the gateway has no pass-through, so each answers 404 whatever the method or credentials.
(test_vllm_engine.py checks the same against a real vLLM behind bendi, and that it listens on loopback.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bendi.core.settings import load_settings
from bendi.gateway.app import create_app
from bendi.gateway.auth import flat_routes
from bendi.services import build_services

ENGINE_ONLY_ROUTES = (
    # vLLM 0.32
    "/pause", "/resume", "/is_paused", "/collective_rpc", "/invocations", "/sleep", "/wake_up", "/is_sleeping",
    "/scale_elastic_ep", "/is_scaling_elastic_ep", "/reset_prefix_cache", "/reset_mm_cache",
    "/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/server_info", "/update_weights", "/start_profile",
    "/stop_profile", "/tokenize", "/detokenize", "/ping", "/load", "/v1/pooling", "/classify", "/score",
    "/rerank", "/v1/rerank", "/v2/rerank", "/v1/score", "/v1/audio/transcriptions",
    # SGLang
    "/flush_cache", "/update_weights_from_disk", "/get_server_info", "/generate", "/abort_request",
    "/release_memory_occupation", "/resume_memory_occupation", "/configure_logging",
)  # fmt: skip


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home: Path = tmp_path_factory.mktemp("routes-home")
    app = create_app(build_services(load_settings(home=home, threads=2, engine="vllm")))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.mark.parametrize("route", ENGINE_ONLY_ROUTES)
def test_engine_routes_answer_404_through_bendi(client: TestClient, route: str) -> None:
    for method in ("GET", "POST", "PUT", "DELETE"):
        response = client.request(method, route, json={"method": "shutdown", "lora_name": "x"})
        assert response.status_code in (404, 405) and response.status_code != 200, (method, route)
        if response.status_code == 405:  # only where bendi has a route of its own by that name
            assert any(getattr(r, "path", None) == route for r in flat_routes(client.app.routes))  # type: ignore[attr-defined]


def test_bendi_has_no_catch_all_route(client: TestClient) -> None:
    """A route whose first segment is a parameter (`/{path:path}`) could forward anything to the
    engine; bendi's parameters come only after fixed prefixes such as /v1/models/."""
    paths = [getattr(r, "path", "") for r in flat_routes(client.app.routes)]  # type: ignore[attr-defined]
    assert paths and [p for p in paths if p.startswith("/{")] == []
