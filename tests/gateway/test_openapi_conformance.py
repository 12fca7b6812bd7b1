"""/openapi.json tells the truth: schemathesis (`--checks all`, fixed seed and budget) against a real
`bendi serve` finds nothing, every documented operation is a route and every route is documented,
and a 405 names the allowed methods in `Allow`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match

from bendi.core.settings import Settings
from bendi.gateway.app import create_app
from bendi.gateway.openapi_docs import ERROR_SCHEMA_REF, OLLAMA_ERROR_SCHEMA_REF, schema_routes
from bendi.services import build_services
from server_process import ServerProcess

# Team mode: every route but the public ones needs credentials, and the run goes as an administrator's
# API key (see `auth_header`); False runs the same checks against single-user mode.
TEAM_MODE = True

SEED = 1
MAX_EXAMPLES = 5  # per operation and phase; the whole module takes about 90 s on 2 idle cores
# Generations are bounded by the context: a 256-token window keeps an uncapped answer short on a CPU.
SERVER_ENV = {"BENDI_CONTEXT_TOKENS": "256"}

# Operations schemathesis does not call, and why (each is covered by a test of its own).
NOT_RUN: dict[str, str] = {
    "POST /v1/pulls": "a well-formed catalog name starts a real download from the internet "
    "(test_pulls_left_out_of_the_run_answer_as_documented checks the refusals)",
    "POST /api/pull": "the same download in Ollama's wire format (also tests/serving/test_ollama_pull.py)",
    "POST /api/evals": "a schema-valid request starts a real evaluation on the server's engines "
    "(tests/knowledge/test_eval_api.py runs one and checks the refusals)",
    "POST /api/tune": "a schema-valid request starts a real training run, minutes of CPU "
    "(tests/tune/test_tune_api.py runs one and checks the refusals)",
}  # fmt: skip

# Known gaps: operations whose schema-valid requests the server still refuses with 400. Only the
# positive_data_acceptance check is off for these (every other check still runs on them). Fix the
# route or its schema, then delete its line.
POSITIVE_DATA_GAPS: dict[str, str] = {
    "POST /v1/knowledge-bases": "display names are checked beyond what JSON Schema says (invisible "
    "characters, look-alike scripts): knowledge_api",
    "POST /v1/knowledge-bases/{kb}/access": "'exactly one of department or user' is not in the schema "
    "(a oneOf would say it): knowledge_api/access_routes",
    "POST /v1/knowledge-bases/{kb}/documents": "the multipart body needs a 'files' part; the schema does "
    "not require one: knowledge_api",
    "POST /v1/admin/departments": "department names are checked like display names: accounts_api",
    "POST /v1/admin/users": "the minimum password length is a setting (min_password_chars) the schema "
    "does not state: accounts_api",
    "POST /v1/auth/keys": "key names are checked like display names: accounts_api",
    "POST /api/create": "preset names, parameters and the `modelfile` text are checked by the Modelfile "
    "grammar, which JSON Schema cannot state: ollama_api/create",
    "POST /v1/auth/login": "single-user mode answers 400 'nothing to sign in to': accounts_api",
    "POST /v1/auth/password": "single-user mode answers 400 'only signed-in users have a password': "
    "accounts_api",
}

# Generated model names are drawn from these lists of well-formed ones, until store/resolve.py answers
# 404 for a malformed name too: today "\u00a0" gets 400 invalid_name where a well-formed name that is
# not installed gets 404, and JSON Schema cannot state the reference grammar that tells them apart.
# ("" is the default model where a request may leave the model out; /api/show and /api/delete need one.)
MODEL_NAMES = ["smollm2:135m", "smollm2", "no-such-model", "no-such-model:7b"]
MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    "default-or-model": ("POST /v1/chat/completions", "POST /v1/completions", "POST /api/chat",
                         "POST /api/generate", "POST /v1/knowledge-bases/{kb}/ask"),
    "model": ("POST /api/show", "DELETE /api/delete"),
}  # fmt: skip
# Answers are capped at a few tokens where the request can say so (the coverage phase also sends
# requests without a cap; the 256-token context bounds those): a CPU writes tens of tokens a second,
# and the length of an answer is no part of the contract.
ANSWER_LENGTHS = [1, 4, 16]
ANSWER_LENGTH_FIELDS = ("body.max_tokens", "body.max_completion_tokens", "body.options.num_predict")


def _toml_list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def schemathesis_config() -> str:
    """The schemathesis.toml of this run: every exception above, spelled out."""
    lines = [
        "request-timeout = 240",  # an answer that fills the context takes tens of seconds on 2 cores
        # Every check, as `--checks all` (which, on the command line, would override the exceptions
        # below); no response-time limit: how fast a CPU generates is no part of the contract.
        "[checks]",
        "enabled = true",
        "[dictionaries.default-or-model]",
        f"values = {_toml_list(['', *MODEL_NAMES])}",
        "[dictionaries.model]",
        f"values = {_toml_list(MODEL_NAMES)}",
        "[dictionaries.answer-lengths]",
        f"values = {ANSWER_LENGTHS}",
        "[parameters]",
        *(
            f'"{field}" = {{ dictionary = "answer-lengths", probability = 1.0 }}'
            for field in ANSWER_LENGTH_FIELDS
        ),
        "[[operations]]",
        f"include-name = {_toml_list(list(NOT_RUN))}",
        "enabled = false",
        "[[operations]]",
        f"include-name = {_toml_list(list(POSITIVE_DATA_GAPS))}",
        "checks.positive_data_acceptance.enabled = false",
    ]
    for dictionary, operations in MODEL_FIELDS.items():
        lines += [
            "[[operations]]",
            f"include-name = {_toml_list(operations)}",
            f'parameters = {{ "body.model" = {{ dictionary = "{dictionary}", probability = 1.0 }}, '
            f'"body.name" = {{ dictionary = "model", probability = 1.0 }} }}',
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def server(bendi_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    # No preloaded model: the first generation loads the bundled smollm2:135m.
    return bendi_server_factory(env=SERVER_ENV)


def _bendi(server: ServerProcess, *args: str, stdin: str = "") -> str:
    home = server.log_path.parent
    env = dict(os.environ, BENDI_HOME=str(home))
    done = subprocess.run([str(Path(sys.executable).parent / "bendi"), *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return done.stdout


@pytest.fixture(scope="module")
def auth_header(server: ServerProcess) -> str | None:
    """None in single-user mode; in team mode an administrator's API key, made with the CLI."""
    if not TEAM_MODE:
        return None
    _bendi(server, "admin", "init", "--username", "admin", "--password-stdin", stdin="conformance-pass-1\n")
    created = json.loads(
        _bendi(server, "admin", "key", "create", "--user", "admin", "--scope", "admin", "--json")
    )
    return f"Bearer {created['key']}"


@pytest.mark.timeout(900)
def test_schemathesis_finds_nothing(server: ServerProcess, auth_header: str | None, tmp_path: Path) -> None:
    pytest.importorskip("schemathesis")
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config())
    st = Path(sys.executable).parent / "st"
    command = [str(st), "--config-file", str(config), "run", f"{server.base_url}/openapi.json",
               "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--workers", "1",
               "--no-color"]  # fmt: skip
    if auth_header:
        command += ["--header", f"Authorization: {auth_header}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=840, cwd=tmp_path)
    report = done.stdout[-20000:] + done.stderr[-5000:]
    assert done.returncode == 0, f"schemathesis found problems:\n{report}\n--- server log ---\n{server.log()}"
    assert "Tested:" in report and server.proc.poll() is None, report


def test_a_405_names_every_allowed_method(server: ServerProcess, auth_header: str | None) -> None:
    headers = {"Authorization": auth_header} if auth_header else {}
    # GET and POST are two routes on this path: the answer must name both, not the first one found.
    response = httpx.put(f"{server.base_url}/v1/conversations", headers=headers, timeout=10)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}
    assert response.json()["error"]["code"] == "method_not_allowed"
    ollama = httpx.get(f"{server.base_url}/api/chat", headers=headers, timeout=10)
    assert ollama.status_code == 405 and ollama.headers["allow"] == "POST"
    assert isinstance(ollama.json()["error"], str)  # the Ollama dialect under /api/


def test_pulls_left_out_of_the_run_answer_as_documented(
    server: ServerProcess, auth_header: str | None
) -> None:
    # Refused before any download starts: a malformed name (400) and a name the catalog lacks (404).
    # (A streamed /api/pull reports a bad name inside its 200 stream, where Ollama answers 400 first.)
    headers = {"Authorization": auth_header} if auth_header else {}
    document = httpx.get(f"{server.base_url}/openapi.json", headers=headers, timeout=10).json()
    for path, body, status in (("/v1/pulls", {"model": "\u00a0"}, 400), ("/v1/pulls", {"model": "no-such:7b"}, 404),
                               ("/api/pull", {"model": "\u00a0", "stream": False}, 400), ("/api/pull", {}, 400)):  # fmt: skip
        response = httpx.post(f"{server.base_url}{path}", json=body, headers=headers, timeout=30)
        assert response.status_code == status, (path, body, response.text)
        assert str(status) in document["paths"][path]["post"]["responses"]
        error = response.json()["error"]
        assert isinstance(error, str) if path.startswith("/api/") else error["code"], error


@pytest.fixture()
def app(settings: Settings) -> FastAPI:
    return create_app(build_services(settings))


@pytest.fixture()
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


# Routes left out of the document on purpose: the web UI's files, FastAPI's own pages, Prometheus
# text (not part of the JSON API), and Ollama's `HEAD /` probe (its GET twin is the UI's page).
UNDOCUMENTED_ROUTES = {
    ("GET", "/"), ("GET", "/favicon.ico"), ("GET", "/js/{name:path}"), ("GET", "/css/{name:path}"),
    ("GET", "/i18n/{name:path}"), ("GET", "/icons/{name:path}"), ("GET", "/metrics"), ("HEAD", "/"),
    *((method, page) for page in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
      for method in ("GET", "HEAD")),
}  # fmt: skip


def _all_routes(app: FastAPI) -> set[tuple[str, str]]:
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI >= 0.16x nests routers
    routes = contexts(app.routes) if contexts is not None else app.routes
    return {(method, str(route.path)) for route in routes for method in getattr(route, "methods", None) or ()}


def test_every_route_is_documented_and_every_documented_operation_is_a_route(
    app: FastAPI, client: TestClient
) -> None:
    document = client.get("/openapi.json").json()
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    # Every documented operation is answered by a route (asked the router itself, with a concrete path).
    for method, path in documented:
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        scope = {"type": "http", "method": method, "path": concrete, "root_path": "", "query_string": b"",
                 "headers": []}  # fmt: skip
        assert any(route.matches(scope)[0] == Match.FULL for route in app.router.routes), (method, path)
    # Every route is documented, but for those left out on purpose.
    in_schema = {(method, template) for method, template, _ in schema_routes(app)}
    assert {(method, path) for method, _, path in schema_routes(app)} == documented
    assert _all_routes(app) - in_schema == UNDOCUMENTED_ROUTES
    assert len(documented) > 40


def test_every_error_status_is_documented_with_its_dialect(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, f"{method} {path}"
            if operation.get("parameters") or "requestBody" in operation:
                assert "400" in responses, f"{method} {path}"
            if "{" in path:
                assert "404" in responses, f"{method} {path}"
            wanted = OLLAMA_ERROR_SCHEMA_REF if path.startswith("/api/") else ERROR_SCHEMA_REF
            for status, response in responses.items():
                if int(status) >= 400:
                    assert response["content"]["application/json"]["schema"] == {"$ref": wanted}, (
                        method,
                        path,
                    )
    public = {
        (m, p) for p, ops in document["paths"].items() for m, op in ops.items() if op.get("security") == []
    }
    assert {("get", "/health"), ("post", "/v1/auth/login"), ("get", "/v1/auth/status")} <= public
    assert {"bearerAuth", "sessionCookie"} <= set(document["components"]["securitySchemes"])
