"""Nothing leaves the machine: FastAPI's own OpenTelemetry instrumentation (which records exception
messages and exports them when FASTAPI_OTEL_AUTO_CONFIGURE=true) stays off in bendi's app."""

from __future__ import annotations

from pathlib import Path

import pytest

from bendi.core.settings import load_settings
from bendi.gateway.app import create_app
from bendi.services import build_services


def test_fastapi_telemetry_is_off_even_when_the_environment_asks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    app = create_app(build_services(load_settings(home=tmp_path)))
    config = getattr(app, "_telemetry", None)  # FastAPI's resolved settings (no public accessor)
    if config is None:
        pytest.skip("this FastAPI has no telemetry of its own")
    assert not any(config[key] for key in ("tracing", "metrics", "logs", "operation_spans", "auto_configure"))
    assert not app._native_telemetry.enabled()  # noqa: SLF001
