"""The Host allowlist (DNS rebinding), the Origin check on state-changing requests, and opt-in CORS."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from bendi.core.errors import UserInputError
from bendi.core.settings import load_settings
from bendi.gateway.app import create_app
from bendi.gateway.errors import install_error_handlers
from bendi.gateway.origin_guard import install_origin_guard, split_host
from bendi.services import build_services
from server_process import ServerProcess

LISTED = "https://app.example.org"


def guarded_app(tmp_path: Path, **settings: Any) -> FastAPI:
    """A small app behind the guard, installed exactly as create_app installs it."""
    app = FastAPI()
    install_error_handlers(app)
    install_origin_guard(app, load_settings(home=tmp_path, **settings))

    @app.get("/v1/models")
    async def models() -> dict[str, str]:
        return {"object": "list"}

    @app.post("/v1/things")
    async def create() -> dict[str, bool]:
        return {"ok": True}

    @app.delete("/api/delete")
    async def delete() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/v1/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"data: {n}\n\n".encode()

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return app


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = guarded_app(tmp_path, server_names=("Bendi.Example.org:8443",), cors_origins=(LISTED + "/",))
    with TestClient(app, base_url="http://127.0.0.1:11435") as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:11435", ("::1", 11435)), ("[::1]", ("::1", None)),
     ("LocalHost", ("localhost", None)), ("bendi.example.org.:443", ("bendi.example.org", 443)),
     ("::1", ("::1", None)), ("[::1", None), ("host:port", None), ("[::1]x", None)],
)  # fmt: skip
def test_split_host(value: str, expected: tuple[str, int | None] | None) -> None:
    assert split_host(value) == expected


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:11435", "127.0.0.1", "localhost:11435", "LOCALHOST", "[::1]:11435", "10.1.2.3:80",
     "[fe80::1]:11435", "bendi.example.org", "BENDI.example.org:9999", "bendi.example.org.",
     socket.gethostname(), socket.getfqdn() + ":11435"],
)  # fmt: skip
def test_own_names_and_ip_literals_are_accepted(client: TestClient, host: str) -> None:
    assert client.get("/v1/models", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:11435", "localhost.evil.example", "127.0.0.1.nip.io:11435",
     "example.org", "[::1", "testserver"],
)  # fmt: skip
def test_other_names_are_refused(client: TestClient, host: str) -> None:
    response = client.get("/v1/models", headers={"Host": host})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "host_not_allowed" and error["type"] == "permission_error"
    assert "BENDI_SERVER_NAMES" in error["message"]


def test_the_ollama_api_gets_its_own_error_shape(client: TestClient) -> None:
    response = client.delete("/api/delete", headers={"Host": "evil.example"})
    assert response.status_code == 403 and "BENDI_SERVER_NAMES" in response.json()["error"]


def _asgi_call(app: FastAPI, headers: list[tuple[bytes, bytes]], peer: str) -> int:
    """One request straight into the app, so it can lack a Host header (HTTP/1.0)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.0", "method": "GET",
             "scheme": "http", "path": "/v1/models", "raw_path": b"/v1/models", "query_string": b"",
             "root_path": "", "headers": headers, "client": (peer, 40000), "server": ("127.0.0.1", 11435)}  # fmt: skip
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    asyncio.run(app(scope, receive, send))
    return statuses[0]


def test_a_missing_host_is_accepted_only_from_loopback(tmp_path: Path) -> None:
    app = guarded_app(tmp_path)
    assert _asgi_call(app, [], "127.0.0.1") == 200
    assert _asgi_call(app, [], "::1") == 200
    assert _asgi_call(app, [], "192.168.1.20") == 403
    assert _asgi_call(app, [(b"host", b"")], "192.168.1.20") == 403
    assert _asgi_call(app, [(b"host", b"192.168.1.5:11435")], "192.168.1.20") == 200


def test_a_foreign_origin_cannot_change_anything(client: TestClient) -> None:
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9999", "https://127.0.0.1:11435",
                   "http://localhost:11435", "not an origin"):  # fmt: skip
        response = client.post("/v1/things", headers={"Origin": origin})
        assert response.status_code == 403, origin
        assert response.json()["error"]["code"] == "origin_not_allowed"
        assert "BENDI_CORS_ORIGINS" in response.json()["error"]["message"]
        assert "access-control-allow-origin" not in response.headers
    assert client.delete("/api/delete", headers={"Origin": "http://evil.example"}).status_code == 403


def test_same_origin_and_originless_requests_pass(client: TestClient) -> None:
    assert client.post("/v1/things").json() == {"ok": True}  # curl, SDKs: no Origin
    assert client.post("/v1/things", headers={"Origin": "http://127.0.0.1:11435"}).status_code == 200
    by_name = {"Host": "localhost:11435", "Origin": "http://LOCALHOST:11435"}
    assert client.post("/v1/things", headers=by_name).status_code == 200
    default_port = {"Host": "bendi.example.org", "Origin": "http://bendi.example.org:80"}
    assert client.post("/v1/things", headers=default_port).status_code == 200
    v6 = {"Host": "[::1]:11435", "Origin": "http://[::1]:11435"}
    assert client.post("/v1/things", headers=v6).status_code == 200


def test_reads_from_a_foreign_origin_get_no_cors_headers(client: TestClient) -> None:
    response = client.get("/v1/models", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200  # the browser keeps the answer from the page: no ACAO
    assert "access-control-allow-origin" not in response.headers


def test_a_listed_origin_gets_cors(client: TestClient) -> None:
    response = client.post("/v1/things", headers={"Origin": LISTED})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == LISTED
    assert "access-control-allow-credentials" not in response.headers
    preflight = client.options(
        "/v1/things",
        headers={"Origin": LISTED, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os"},
    )  # fmt: skip
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == LISTED
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "POST" in preflight.headers["access-control-allow-methods"]
    refused = client.options("/v1/things", headers={"Origin": "http://evil.example",
                                                    "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers


def test_no_cors_headers_without_listed_origins(tmp_path: Path) -> None:
    with TestClient(guarded_app(tmp_path), base_url="http://127.0.0.1:11435") as plain:
        response = plain.get("/v1/models", headers={"Origin": LISTED})
        assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
        assert plain.post("/v1/things", headers={"Origin": LISTED}).status_code == 403


@pytest.mark.parametrize("entry", ["*", "app.example.org", "https://app.example.org/path", "ftp://x.org"])
def test_a_cors_entry_that_is_not_an_origin_is_refused(tmp_path: Path, entry: str) -> None:
    with pytest.raises(UserInputError, match="is not a web origin"):
        guarded_app(tmp_path, cors_origins=(entry,))


def test_streams_pass_through_untouched(client: TestClient) -> None:
    with client.stream("GET", "/v1/stream") as response:
        assert response.status_code == 200
        assert list(response.iter_lines()) == ["data: 0", "", "data: 1", "", "data: 2", ""]


def test_create_app_installs_the_guard(settings: Any) -> None:
    with TestClient(create_app(build_services(settings)), base_url="http://127.0.0.1:11435") as app_client:
        assert app_client.get("/v1/models").status_code == 200
        assert app_client.get("/v1/models", headers={"Host": "evil.example"}).status_code == 403


# --- a real server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(bendi_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    env = {"BENDI_SERVER_NAMES": "bendi.example.org", "BENDI_CORS_ORIGINS": LISTED}
    return bendi_server_factory(env=env)


def test_real_server_host_allowlist(server: ServerProcess) -> None:
    url = server.base_url + "/v1/models"
    denied = httpx.get(url, headers={"Host": "evil.example"})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "host_not_allowed"
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"[::1]:{server.port}",
                 f"bendi.example.org:{server.port}"):  # fmt: skip
        assert httpx.get(url, headers={"Host": host}).status_code == 200, host
    assert httpx.get(server.base_url + "/health", headers={"Host": "evil.example"}).status_code == 403


def test_real_server_http10_without_host_from_loopback(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


def test_real_server_origin_and_cors(server: ServerProcess) -> None:
    url = server.base_url + "/v1/chat/completions"
    evil = httpx.post(url, json={}, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in evil.headers
    # Same origin reaches the route: its validation answers (an empty body is a 400), not the guard.
    same = httpx.post(url, json={}, headers={"Origin": server.base_url})
    assert same.status_code == 400 and same.json()["error"]["code"] == "invalid_request", same.text
    assert "access-control-allow-origin" not in same.headers
    listed = httpx.get(server.base_url + "/v1/models", headers={"Origin": LISTED})
    assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == LISTED
    preflight = httpx.options(
        server.base_url + "/v1/chat/completions",
        headers={"Origin": LISTED, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"},
    )  # fmt: skip
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == LISTED
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
