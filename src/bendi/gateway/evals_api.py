"""Evaluations: POST /api/evals starts one on this server's models (a question suite given inline,
or the shipped demo suite), GET /api/evals lists the reports `bendi eval` and this API saved (newest
first, headline metrics), /api/evals/{id} is one report (its status and progress while it runs) and
/api/evals/{id}/html the self-contained HTML report. Administrators only (route_rules.py): a report
holds answers drawn from any knowledge base, and a run occupies the engines."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bendi.access.scope import KbScope
from bendi.evals.demo_suite import DEMO_SUITE
from bendi.evals.jobs import EvalJobs
from bendi.evals.report_html import CSP, render_html
from bendi.evals.runner import EvalOptions
from bendi.evals.storage import list_reports, load_report
from bendi.evals.suite import MAX_QUESTIONS, Suite, load_suite, parse_suite
from bendi.gateway.dependencies import get_services, readable_kbs
from bendi.services import Services

router = APIRouter(prefix="/api/evals", tags=["evals"])
ServicesDep = Annotated[Services, Depends(get_services)]
ScopeDep = Annotated[KbScope, Depends(readable_kbs)]


class EvalRequest(BaseModel):
    # "demo", or the questions themselves in the suite format (docs/eval.md); never a server path.
    suite: Literal["demo"] | list[dict[str, Any]]
    name: str = Field(default="api", max_length=100)
    models: list[str] = Field(min_length=1)
    knowledge_base: str | None = None
    judge: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512


def _suite(body: EvalRequest) -> Suite:
    if isinstance(body.suite, list):
        lines = [json.dumps(q, ensure_ascii=False) for q in body.suite[: MAX_QUESTIONS + 1]]
        return parse_suite(lines, body.name)
    return load_suite(DEMO_SUITE)  # "demo": the schema allows no other string, so never a server path


@router.post("", status_code=202)
async def start(body: EvalRequest, request: Request, services: ServicesDep, scope: ScopeDep) -> JSONResponse:
    jobs: EvalJobs = getattr(request.app.state, "eval_jobs", None) or EvalJobs()
    request.app.state.eval_jobs = jobs
    options = EvalOptions(models=tuple(body.models), knowledge_base=body.knowledge_base, judge=body.judge,
                          temperature=body.temperature, max_tokens=body.max_tokens)  # fmt: skip
    report = jobs.start(services, await run_in_threadpool(_suite, body), options, scope)
    return JSONResponse(report, status_code=202, headers={"Location": f"/api/evals/{report['id']}"})


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
