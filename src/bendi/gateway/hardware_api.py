"""GET /v1/hardware (what `bendi doctor` reports) and GET /v1/plan (what `bendi plan` says), as JSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from bendi.gateway.dependencies import get_services
from bendi.services import Services

router = APIRouter(prefix="/v1", tags=["advisor"])
ServicesDep = Annotated[Services, Depends(get_services)]


TOP_MODELS = 3  # as many recommendations as `bendi doctor` prints


def _profile(services: Services) -> Any:
    from bendi.hardware.probe import probe

    return probe(disk_path=services.paths.home)


def _doctor(services: Services) -> dict[str, Any]:
    """The `bendi doctor --json` object: hardware, recommended plans, problems."""
    from bendi.catalog import advisor

    profile = _profile(services)
    fitting, _ = advisor.rank_variants(profile)
    # The problem sentences live with the advisor once it exposes them; the keys stay the same.
    find_problems = getattr(advisor, "problems", None)
    return {"hardware": profile.to_dict(), "recommended": [p.to_json() for p in fitting[:TOP_MODELS]],
            "problems": list(find_problems(profile)) if find_problems else []}  # fmt: skip


def _plan(services: Services, model: str | None, ctx: int | None) -> dict[str, Any]:
    """The `bendi plan --json` object for this machine: one plan, or the ranked list and the rejected."""
    from bendi.catalog.advisor import rank_variants
    from bendi.catalog.catalog import load_catalog
    from bendi.catalog.draft_pairing import advise_draft
    from bendi.catalog.engine_choice import plan_serving
    from bendi.engines.plan_command import launch_command

    profile = _profile(services)
    if model:  # the same engine, quant, command and draft model as `bendi plan MODEL --json`
        catalog = load_catalog()
        plan = plan_serving(catalog.resolve(model), profile, ctx, None, catalog.names_quant(model))
        draft = advise_draft(plan)
        return {**plan.to_json(), **launch_command(plan), "draft_model": draft.to_json() if draft else None}
    fitting, rejected = rank_variants(profile, ctx)
    return {"machine": profile.label, "plans": [p.to_json() for p in fitting],
            "rejected": [p.to_json() for p in rejected]}  # fmt: skip


@router.get("/hardware", summary="This machine as `bendi doctor --json` reports it")
async def hardware(services: ServicesDep) -> dict[str, Any]:
    return await run_in_threadpool(_doctor, services)


@router.get("/plan", summary="`bendi plan --json`: one model's plan, or the ranked list without `model`")
async def plan(
    services: ServicesDep,
    model: Annotated[str | None, Query(max_length=200)] = None,
    ctx: Annotated[int | None, Query(ge=128, le=1_048_576)] = None,
) -> dict[str, Any]:
    return await run_in_threadpool(_plan, services, model, ctx)
