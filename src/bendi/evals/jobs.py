"""Evaluations started over HTTP (POST /api/evals): one at a time, in the server's event loop and on
its engines, the report saved as it goes (status running -> done | failed | cancelled, with the
model and question being answered), so GET /api/evals/{id} can follow it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from bendi.access.scope import KbScope
from bendi.core.errors import BendiError, RunInProgressError
from bendi.evals.runner import EvalOptions, check_targets, run_eval
from bendi.evals.storage import new_report_id, save_report
from bendi.evals.suite import Suite
from bendi.evals.targets import make_target
from bendi.services import Services

log = logging.getLogger("bendi.evals")


class EvalJobs:
    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._running: str | None = None

    def start(self, services: Services, suite: Suite, options: EvalOptions, scope: KbScope) -> dict[str, Any]:
        """Check everything a run needs now (a bad model name is the caller's error, not a failed
        report), save the report as running, and answer while it runs."""
        if self._task is not None and not self._task.done():
            raise RunInProgressError(f"The evaluation {self._running} is still running; one runs at a time. "
                                f"Follow it at GET /api/evals/{self._running}.")  # fmt: skip
        options.validate()
        check_targets(services, [make_target(services, m, options.knowledge_base) for m in options.models],
                      options.judge, scope)  # fmt: skip
        report: dict[str, Any] = {"id": new_report_id(), "suite": suite.name, "status": "running",
                                  "error": None, "started_at": time.time(), "progress": None, "models": {}}  # fmt: skip
        save_report(services.paths, report)
        self._running = report["id"]
        self._task = asyncio.create_task(self._run(services, suite, options, scope, dict(report)))
        return report

    async def _run(self, services: Services, suite: Suite, options: EvalOptions, scope: KbScope,
                   report: dict[str, Any]) -> None:  # fmt: skip
        def progress(model: str, done: int, total: int) -> None:
            report["progress"] = {"model": model, "done": done, "total": total}
            save_report(services.paths, report)

        try:
            result = await run_eval(services, suite, options, scope=scope, progress=progress)
            report.update(result, status="done", progress=None)
        except asyncio.CancelledError:  # the server is shutting down
            report.update(status="cancelled", error="The server stopped before the evaluation finished.")
            save_report(services.paths, report)
            raise
        except BendiError as exc:
            report.update(status="failed", error=exc.message)
        except Exception as exc:  # a bug must still end the report, not leave it "running"
            log.exception("evaluation %s failed", report["id"])
            report.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        save_report(services.paths, report)
