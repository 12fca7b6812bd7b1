"""Evaluation reports that `bendi eval` saved: GET /api/evals (newest first, headline metrics),
/api/evals/{id} (the whole report) and /api/evals/{id}/html (the self-contained HTML report).
Administrators only (route_rules.py): a report holds answers drawn from any knowledge base."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from bendi.evals.report_html import CSP, render_html
from bendi.evals.storage import list_reports, load_report
from bendi.gateway.dependencies import get_services
from bendi.services import Services

router = APIRouter(prefix="/api/evals", tags=["evals"])
ServicesDep = Annotated[Services, Depends(get_services)]


@router.get("")
async def reports(services: ServicesDep) -> dict[str, Any]:
    return {"reports": await run_in_threadpool(list_reports, services.paths)}


@router.get("/{report_id}")
async def report(report_id: str, services: ServicesDep) -> dict[str, Any]:
    return await run_in_threadpool(load_report, services.paths, report_id)


@router.get("/{report_id}/html")
async def report_html(report_id: str, services: ServicesDep) -> HTMLResponse:
    page = render_html(await run_in_threadpool(load_report, services.paths, report_id))
    # The page's own policy, also as a header: inline styles and its SVG chart, nothing else.
    return HTMLResponse(page, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})
