"""Model pulls that outlive the browser tab: start, watch and cancel background pulls (/v1/pulls).

The web UI starts a pull here and polls its progress, so a page reload (or a second tab) picks the
same pull up where it is; the download itself resumes from its partial file if the server restarts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from bendi.core.errors import BendiError, NotFoundError
from bendi.services import Services

router = APIRouter(prefix="/v1/pulls", tags=["models"])
FINISHED_KEPT_S = 600.0  # a finished pull stays listed this long, so a reload still shows the outcome


@dataclass(frozen=True)
class PullState:
    model: str
    status: str = "queued"  # queued | resolving | downloading | verifying | success | failed | cancelled
    completed_bytes: int = 0
    total_bytes: int | None = None
    bytes_per_s: float = 0.0
    eta_s: float | None = None
    file: str | None = None
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def active(self) -> bool:
        return self.finished_at is None

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "status": self.status, "active": self.active,
                "completed_bytes": self.completed_bytes, "total_bytes": self.total_bytes,
                "bytes_per_s": self.bytes_per_s, "eta_s": self.eta_s, "file": self.file, "error": self.error,
                "started_at": self.started_at, "finished_at": self.finished_at}  # fmt: skip


class PullRegistry:
    """The pulls of one server: each runs in its own thread, its latest state readable at any time."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._lock = threading.Lock()
        self._states: dict[str, PullState] = {}
        self._cancels: dict[str, threading.Event] = {}

    def start(self, model: str) -> PullState:
        with self._lock:
            current = self._states.get(model)
            if current is not None and current.active:
                return current  # a second click (or tab) attaches to the pull already running
            self._states[model] = PullState(model)
            self._cancels[model] = cancel = threading.Event()
        threading.Thread(target=self._run, args=(model, cancel), name=f"pull {model}", daemon=True).start()
        return self._states[model]

    def _set(self, model: str, **changes: Any) -> None:
        with self._lock:
            self._states[model] = replace(self._states[model], **changes)

    def _run(self, model: str, cancel: threading.Event) -> None:
        from bendi.store.store import PullProgress, Store

        def progress(p: PullProgress) -> None:
            self._set(model, status=p.status, completed_bytes=p.completed_bytes, total_bytes=p.total_bytes,
                      bytes_per_s=p.speed_bytes_per_s, eta_s=p.eta_s, file=p.file_name)  # fmt: skip

        try:
            Store(self._services.settings, self._services.paths).pull(model, progress=progress, cancel=cancel)
        except BendiError as exc:
            status = "cancelled" if cancel.is_set() else "failed"
            self._set(model, status=status, error=exc.message, finished_at=time.time())
        except Exception as exc:  # a pull thread must always end in a state the UI can show
            self._set(
                model, status="failed", error=f"The pull stopped unexpectedly: {exc}", finished_at=time.time()
            )
        else:
            state = self._states[model]
            self._set(model, status="success", completed_bytes=state.total_bytes or state.completed_bytes,
                      finished_at=time.time())  # fmt: skip

    def cancel(self, model: str) -> PullState:
        with self._lock:
            state = self._states.get(model)
            if state is None or not state.active:
                raise NotFoundError(f"No pull of {model!r} is running.")
            self._cancels[model].set()
            return state

    def list(self) -> list[PullState]:
        now = time.time()
        with self._lock:
            for model in [
                m for m, s in self._states.items() if s.finished_at and now - s.finished_at > FINISHED_KEPT_S
            ]:
                del self._states[model]
            return sorted(self._states.values(), key=lambda s: s.started_at, reverse=True)


def get_pulls(request: Request) -> PullRegistry:
    state = request.app.state
    with _REGISTRY_LOCK:
        if getattr(state, "pulls", None) is None:
            state.pulls = PullRegistry(state.services)
    registry: PullRegistry = state.pulls
    return registry


_REGISTRY_LOCK = threading.Lock()  # guards the one-time creation only; the registry lives on app.state
PullsDep = Annotated[PullRegistry, Depends(get_pulls)]


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    model: str = Field(min_length=1, max_length=300)


@router.get("", summary="Pulls running now and those finished in the last 10 minutes, newest first")
async def list_pulls(pulls: PullsDep) -> dict[str, Any]:
    return {"object": "list", "data": [s.to_json() for s in pulls.list()]}


@router.post("", status_code=202, summary="Start pulling a model in the background (or attach to its pull)")
async def start_pull(body: PullRequest, pulls: PullsDep) -> dict[str, Any]:
    from bendi.store.plan import plan_pull

    plan_pull(body.model)  # reject an unknown or malformed name now, with the store's own message
    return pulls.start(body.model).to_json()


@router.delete("/{model:path}", summary="Cancel a running pull (its partial file is kept for resuming)")
async def cancel_pull(model: str, pulls: PullsDep) -> dict[str, Any]:
    return pulls.cancel(model).to_json()
