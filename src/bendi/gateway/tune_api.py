"""LoRA tuning over HTTP, what `bendi tune` does (docs/tune.md): POST /api/tune starts a run on
examples given inline, GET /api/tune/{id} follows it (step, loss, eval loss, time left), DELETE
/api/tune/{id} stops it with a checkpoint (POST again with "resume": true continues), GET /api/tune
lists this server's runs. The result is the preset BASE+NAME, served at once. Administrators only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bendi.gateway.dependencies import get_services
from bendi.services import Services
from bendi.tune.jobs import TuneJobs
from bendi.tune.run import TuneOptions

router = APIRouter(prefix="/api/tune", tags=["tune"])
ServicesDep = Annotated[Services, Depends(get_services)]


class TuneRequest(BaseModel):
    base: str = Field(min_length=1)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # the preset is BASE+NAME
    # One example per item, as the JSONL lines of `bendi tune --data`: {"messages": [...]} or
    # {"question", "answer"} / {"prompt", "completion"}; checked line by line (the item's index + 1).
    data: list[dict[str, Any]] = Field(min_length=1)
    eval: list[dict[str, Any]] | None = None
    epochs: int = 3
    max_steps: int = 0
    resume: bool = False
    rank: int = 16
    lr: float = 1e-3
    batch_size: int = 8
    max_length: int = 256


def _jobs(request: Request) -> TuneJobs:
    jobs: TuneJobs | None = getattr(request.app.state, "tune_jobs", None)
    if jobs is None:
        jobs = request.app.state.tune_jobs = TuneJobs()
    return jobs


@router.post("", status_code=202)
async def start(body: TuneRequest, request: Request, services: ServicesDep) -> JSONResponse:
    # data/eval_data: files of the request's examples, written by TuneJobs.start.
    options = TuneOptions(
        base=body.base, data=Path(), name=body.name, epochs=body.epochs, max_steps=body.max_steps,
        resume=body.resume, rank=body.rank, alpha=2 * body.rank, learning_rate=body.lr,
        batch_size=body.batch_size, max_length=body.max_length,
    )  # fmt: skip
    job = _jobs(request).start(services.settings, services.paths, options, body.data, body.eval)
    return JSONResponse(job.to_json(), status_code=202, headers={"Location": f"/api/tune/{job.id}"})


@router.get("")
async def runs(request: Request) -> dict[str, Any]:
    return {"runs": [job.to_json() for job in _jobs(request).all()]}


@router.get("/{job_id}")
async def run(job_id: str, request: Request) -> dict[str, Any]:
    return _jobs(request).get(job_id).to_json()


@router.delete("/{job_id}")
async def stop(job_id: str, request: Request) -> dict[str, Any]:
    job = _jobs(request).get(job_id)
    job.control.stop()
    return job.to_json()
