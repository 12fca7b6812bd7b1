"""Make /openapi.json tell the truth: every error status a route can answer, its body, and who may call it.

FastAPI documents what a route returns when all goes well, plus a 422 that bendi never sends
(validation errors are mapped to 400 in errors.py). This module post-processes the generated
document once per authentication mode, centrally, so a new route is documented correctly without
repeating `responses=` on every decorator:

- 400 for every operation with parameters or a body, 404 for every operation with a path parameter;
- 401/403 for every non-public route while credentials are required (team mode or the legacy key);
  403 for a route the access table (access/route_rules.py) does not list, which is always refused;
- the statuses a route raises beyond those, from EXTRA_STATUSES below;
- the error body: OpenAI-shaped (`Error`) everywhere, Ollama-shaped (`OllamaError`) under /api/;
- the streaming media types (SSE, NDJSON) beside JSON where `stream` switches them;
- the security schemes, with `security: []` on public routes.
405 is not per operation: the router answers it for any path with an `Allow` header (errors.py).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.routing import APIRoute

from bendi.access.route_rules import rule_for

ERROR_SCHEMA_REF = "#/components/schemas/Error"
OLLAMA_ERROR_SCHEMA_REF = "#/components/schemas/OllamaError"
OLLAMA_PREFIX = "/api/"
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "title": "Error",
        "description": "Every error outside /api/ (OpenAI's shape). The Ollama API (/api/*) answers "
        "`OllamaError` instead: {\"error\": \"<message>\"}.",
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
    },
    "ErrorDetail": {
        "title": "ErrorDetail",
        "type": "object",
        "required": ["message", "type", "code", "param"],
        "properties": {
            "message": {"type": "string", "description": "What happened and what to do, as a sentence."},
            "type": {"type": "string", "description": "OpenAI's error type, e.g. invalid_request_error."},
            "code": {"type": "string", "description": "A stable machine-readable code, e.g. model_not_found."},
            "param": {"anyOf": [{"type": "string"}, {"type": "null"}],
                      "description": "The request field at fault, when one is."},
        },
    },
    "OllamaError": {
        "title": "OllamaError",
        "description": "Every error under /api/ (Ollama's shape).",
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
}  # fmt: skip

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "An API key (bendi_<id>_<secret>), or the server's legacy --api-key."},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                     "description": "The same API key in a header of its own."},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "bendi_session",
                      "description": "The web UI's session; POST/PUT/PATCH/DELETE also need X-CSRF-Token."},
}  # fmt: skip
CREDENTIALS: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]

STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "The request is malformed, or asks for something this server cannot do.",
    401: "Credentials are missing, wrong, expired or revoked.",
    403: "The caller is known but may not do this.",
    404: "The named model, knowledge base, conversation, document or account does not exist "
    "(or the caller may not see it).",
    409: "Something with that name exists already.",
    413: "The upload is larger than this server accepts.",
    429: "The caller is over its quota; retry after `Retry-After` seconds.",
    502: "The download source failed.",
    503: "The server is full, shutting down, or the model cannot be loaded; retry later.",
    504: "The request ran past the server's time limit.",
    507: "The disk is full.",
}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}
RETRY_STATUSES = frozenset({429, 503})

GENERATION = (404, 429, 503, 504)  # unknown model; quota; full, draining or unloadable; deadline
EMBEDDING = (404, 429, 503)
# Statuses a route raises beyond those its inputs (400), path parameters (404) and access rule
# (401/403) imply, keyed by (method, route template as in access/route_rules.py).
EXTRA_STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/v1/chat/completions"): GENERATION,
    ("POST", "/v1/completions"): GENERATION,
    ("POST", "/v1/embeddings"): EMBEDDING,
    ("POST", "/api/chat"): GENERATION,
    ("POST", "/api/generate"): GENERATION,
    ("POST", "/api/embed"): EMBEDDING,
    ("POST", "/api/embeddings"): EMBEDDING,
    ("POST", "/api/show"): (404,),
    ("POST", "/api/pull"): (404, 502, 507),
    ("DELETE", "/api/delete"): (404,),
    ("GET", "/v1/plan"): (404,),
    ("POST", "/v1/pulls"): (404,),
    ("POST", "/v1/knowledge-bases"): (409,),
    ("POST", "/v1/knowledge-bases/{kb}/documents"): (413,),
    ("POST", "/v1/knowledge-bases/{kb}/search"): (503,),  # the query is embedded by a model
    ("POST", "/v1/knowledge-bases/{kb}/ask"): GENERATION,
    ("POST", "/v1/knowledge-bases/{kb}/access"): (409,),
    ("POST", "/v1/knowledge-bases/{kb}/examples"): (503,),  # the questions are embedded by a model
    ("POST", "/v1/auth/login"): (401, 429),
    ("POST", "/v1/auth/password"): (401, 429),  # a wrong current password counts as a failed sign-in
    ("POST", "/v1/auth/keys"): (403, 409),  # 403 also in single-user mode: keys belong to users
    ("POST", "/v1/admin/users"): (404, 409),  # 404: no such department
    ("PATCH", "/v1/admin/users/{user_id}"): (409,),
    ("POST", "/v1/admin/departments"): (409,),
    ("POST", "/v1/admin/keys"): (404, 409),  # 404: no such user
}
JSON = "application/json"
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
# What one item of a streamed body is. For text/event-stream the schema describes each event
# (OpenAPI before 3.2): `data` holds one JSON chunk, the last one `[DONE]`.
MEDIA_SCHEMAS: dict[str, dict[str, Any]] = {
    SSE: {"type": "object", "required": ["data"], "properties": {
        "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"},
        "data": {"type": "string", "description": "One JSON chunk, or [DONE] at the end."}}},
    NDJSON: {"type": "object", "description": "One JSON object per line."},
    "text/csv": {"type": "string"},
}  # fmt: skip
# Every media type a route's success response comes in, where that is not JSON alone: `stream`
# switches chat and pulls to a stream of events; the audit export is JSON lines or CSV.
SUCCESS_MEDIA_TYPES: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "/v1/chat/completions"): (JSON, SSE),
    ("POST", "/v1/completions"): (JSON, SSE),
    ("POST", "/v1/knowledge-bases/{kb}/ask"): (JSON, SSE),
    ("POST", "/api/chat"): (JSON, NDJSON),
    ("POST", "/api/generate"): (JSON, NDJSON),
    ("POST", "/api/pull"): (JSON, NDJSON),
    ("GET", "/v1/admin/audit/export"): (NDJSON, "text/csv"),
}


def install_openapi_docs(app: FastAPI) -> None:
    """Serve the truthful document at /openapi.json (built once per authentication mode, then cached)."""
    generate: Callable[[], dict[str, Any]] = app.openapi  # FastAPI's own generator, cached by FastAPI
    built: dict[bool, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        auth_on = credentials_required(app)
        if auth_on not in built:
            built[auth_on] = document(app, copy.deepcopy(generate()), auth_on=auth_on)
        return built[auth_on]

    app.openapi = openapi  # type: ignore[method-assign]


def credentials_required(app: FastAPI) -> bool:
    """Whether non-public routes need credentials now: team mode, or single-user mode with a legacy key.

    Asked on every request, because `bendi admin init` in another process switches team mode on."""
    services = app.state.services
    return bool(services.settings.api_key) or bool(services.access.team_mode)


def document(app: FastAPI, schema: dict[str, Any], *, auth_on: bool) -> dict[str, Any]:
    """`schema` (FastAPI's document, a private copy) with the error statuses, bodies and security added."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(copy.deepcopy(ERROR_SCHEMAS))
    components["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    # Single-user mode without a key: credentials are accepted but not needed ({} = none at all).
    schema["security"] = [*CREDENTIALS] if auth_on else [*CREDENTIALS, {}]
    for method, template, documented_path in schema_routes(app):
        operation = schema["paths"].get(documented_path, {}).get(method.lower())
        if operation is not None:
            _document_operation(operation, method, template, auth_on=auth_on)
    _drop_unused_validation_schemas(components["schemas"], schema)
    return schema


def schema_routes(app: FastAPI) -> Iterator[tuple[str, str, str]]:
    """(method, route template, documented path) of every route FastAPI puts in the document.

    The template keeps converters (`{model_id:path}`) as access/route_rules.py spells it; the
    documented path drops them."""
    # FastAPI >= 0.16x wraps included routers; iter_route_contexts flattens them (older: a flat list).
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: Iterable[Any] = contexts(app.routes) if contexts is not None else app.routes
    for route in routes:
        if not isinstance(getattr(route, "original_route", route), APIRoute) or not route.include_in_schema:
            continue
        for method in sorted(route.methods):
            yield method, str(route.path), str(route.path_format)


def error_statuses(operation: dict[str, Any], method: str, template: str, *, auth_on: bool) -> set[int]:
    """The error statuses an operation can answer (besides 405 and a 500 that would be a bug)."""
    statuses = set(EXTRA_STATUSES.get((method, template), ()))
    if operation.get("parameters") or "requestBody" in operation:
        statuses.add(400)
    if "{" in template:
        statuses.add(404)
    rule = rule_for(method, template)
    if rule is None:
        statuses.add(403)  # default deny: a route the access table does not list is always refused
    if rule != "public" and auth_on:
        statuses |= {401, 403}
    return statuses


def _document_operation(operation: dict[str, Any], method: str, template: str, *, auth_on: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)  # validation errors are answered with 400 (errors.py)
    if rule_for(method, template) == "public":
        operation["security"] = []
    ref = OLLAMA_ERROR_SCHEMA_REF if template.startswith(OLLAMA_PREFIX) else ERROR_SCHEMA_REF
    for status in sorted(error_statuses(operation, method, template, auth_on=auth_on)):
        entry = responses.setdefault(str(status), {})
        entry.setdefault("description", STATUS_DESCRIPTIONS.get(status, "Error."))
        entry.setdefault("content", {}).setdefault("application/json", {})["schema"] = {"$ref": ref}
        if status in RETRY_STATUSES:
            entry.setdefault("headers", {}).update(copy.deepcopy(RETRY_AFTER))
    media_types = SUCCESS_MEDIA_TYPES.get((method, template))
    success = next((code for code in sorted(responses) if code.startswith("2")), None)
    if media_types is not None and success is not None:
        documented = responses[success].get("content", {})
        responses[success]["content"] = {
            media: documented.get(
                media, {"schema": copy.deepcopy(MEDIA_SCHEMAS.get(media, {"type": "string"}))}
            )
            for media in media_types
        }


def _drop_unused_validation_schemas(schemas: dict[str, Any], schema: dict[str, Any]) -> None:
    for name in _VALIDATION_SCHEMAS:
        held = schemas.pop(name, None)
        if held is not None and f'"#/components/schemas/{name}"' in json.dumps(schema):
            schemas[name] = held  # still referenced by some route's own `responses=`
