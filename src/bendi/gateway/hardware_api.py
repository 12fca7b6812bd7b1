"""GET /v1/hardware (what `bendi doctor` reports) and GET /v1/plan (what `bendi plan` says), as JSON."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from bendi.core.errors import BendiError
from bendi.gateway.dependencies import get_services
from bendi.services import Services

router = APIRouter(prefix="/v1", tags=["advisor"])
ServicesDep = Annotated[Services, Depends(get_services)]


class AdvisorUnavailableError(BendiError):
    http_status = 503
    code = "advisor_unavailable"
    error_type = "server_error"


def _advisor() -> Any:
    try:
        return importlib.import_module("bendi.catalog.advisor")
    except ImportError as exc:
        raise AdvisorUnavailableError(
            f"The hardware advisor is not available in this installation ({exc}). Reinstall bendi."
        ) from exc


def _doctor(services: Services) -> dict[str, Any]:
    from bendi.hardware.probe import probe

    advisor = _advisor_or_none()
    report = getattr(advisor, "doctor_report", None) if advisor else None
    if report is not None:
        result: dict[str, Any] = report(services.settings)
        return result
    profile = probe(services.paths.home)
    return {"hardware": profile.to_dict(), "problems": [], "recommended": []}


def _advisor_or_none() -> Any:
    try:
        return importlib.import_module("bendi.catalog.advisor")
    except ImportError:
        return None


def _plan(services: Services, model: str | None, ctx: int | None) -> Any:
    advisor = _advisor()
    plan_json = getattr(advisor, "plan_json", None)
    if plan_json is None:
        raise AdvisorUnavailableError("The hardware advisor in this installation has no JSON plan function.")
    return plan_json(services.settings, model=model, context_tokens=ctx)


@router.get("/hardware", summary="This machine as `bendi doctor --json` reports it")
async def hardware(services: ServicesDep) -> dict[str, Any]:
    return await run_in_threadpool(_doctor, services)


@router.get("/plan", summary="`bendi plan --json`: one model's plan, or the ranked list without `model`")
async def plan(
    services: ServicesDep,
    model: Annotated[str | None, Query(max_length=200)] = None,
    ctx: Annotated[int | None, Query(ge=128, le=1_048_576)] = None,
) -> Any:
    return await run_in_threadpool(_plan, services, model, ctx)
