"""Typed access to the Services object from route handlers."""

from __future__ import annotations

from fastapi import Request

from bendi.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
