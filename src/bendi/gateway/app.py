"""create_app: the FastAPI application with every API mounted on one Services object."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from bendi import __version__
from bendi.services import Services

# Each module exposes `router: fastapi.APIRouter`. Order matters only for overlapping paths
# (the UI's catch-all static mount goes last).
ROUTER_MODULES: tuple[str, ...] = (
    "bendi.gateway.health",
    "bendi.gateway.metrics",
    "bendi.gateway.openai_api.routes",
    "bendi.gateway.openai_api.embeddings",
    "bendi.gateway.ollama_api.routes",
    "bendi.gateway.ollama_api.pull",
    "bendi.gateway.ollama_api.create",
    "bendi.gateway.evals_api",
    "bendi.gateway.tune_api",
    "bendi.gateway.conversations_api.routes",
    "bendi.gateway.hardware_api",
    "bendi.gateway.pulls_api",
    "bendi.gateway.knowledge_api.routes",
    "bendi.gateway.knowledge_api.access_routes",
    "bendi.gateway.knowledge_api.examples_routes",
    "bendi.gateway.accounts_api.auth_routes",
    "bendi.gateway.accounts_api.admin_routes",
    "bendi.ui.routes",
)


def no_framework_telemetry() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry instrumentation, off: it records exception messages and can export
    them (FASTAPI_OTEL_AUTO_CONFIGURE), and nothing leaves this machine; bendi's /metrics and audit
    trail are its telemetry. Off, it also stops looking up providers on every request."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}  # an older FastAPI has none
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False,
                          "auto_configure": False}}  # fmt: skip


def create_app(services: Services, *, preload: tuple[str, ...] = ()) -> FastAPI:
    """The app. Models in `preload` are loaded before the server accepts requests."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for model in preload:
            await services.engines.acquire(model)
        try:
            yield
        finally:
            await services.aclose()

    app = FastAPI(
        title="bendi",
        version=__version__,
        description="本地 bendi: OpenAI- and Ollama-compatible local inference, knowledge bases, web UI.",
        lifespan=lifespan,
        **no_framework_telemetry(),
    )
    app.state.services = services
    from bendi.gateway.admission import Admission
    from bendi.gateway.shutdown import Drain

    app.state.admission = Admission(services.settings)
    app.state.drain = Drain()
    from bendi.gateway.errors import install_error_handlers

    install_error_handlers(app)
    from bendi.gateway.auth import install_authentication

    # Middleware added first runs innermost: metrics see every request, the Host/Origin guard
    # refuses foreign pages before any credential is looked up, then authentication decides.
    install_authentication(app)
    from bendi.gateway.origin_guard import install_origin_guard

    install_origin_guard(app, services.settings)
    from bendi.gateway.metrics import install_request_counter

    install_request_counter(app)
    for module_name in ROUTER_MODULES:
        app.include_router(importlib.import_module(module_name).router)
    importlib.import_module("bendi.gateway.openapi_docs").install_openapi_docs(app)  # statuses, errors, auth
    return app
