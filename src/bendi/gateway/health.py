"""Liveness and readiness: answers at once, even while every model is busy generating."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from bendi import __version__
from bendi.gateway.dependencies import get_services
from bendi.services import Services

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(services: Annotated[Services, Depends(get_services)]) -> dict[str, Any]:
    pool = services.engines
    return {
        "status": "ok",
        "version": __version__,
        "models_loaded": [m.info.model_name for m in pool.loaded()],
        "models_failed": pool.failures(),
    }
