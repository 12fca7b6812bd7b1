"""Tuning runs started over HTTP (POST /api/tune): one at a time, in a thread of the server (the
training itself runs in the trainer's own process), with the latest progress kept for GET and a stop
that checkpoints (DELETE), so `"resume": true` continues it. A finished run's metrics stay on disk
beside its adapter (<home>/tune/<preset>/metrics.json)."""

from __future__ import annotations

import json
import secrets
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bendi.core.errors import BendiError, NotFoundError, RunInProgressError
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.tune.data import load_tune_data
from bendi.tune.environment import find_environment
from bendi.tune.run import (
    TuneControl,
    TuneInterrupted,
    TuneOptions,
    check_options,
    check_resumable,
    preset_for,
    run_dir_for,
    run_tune,
)

MAX_EXAMPLES = 100_000


class TuneJob:
    def __init__(self, job_id: str, preset: str) -> None:
        self.id, self.preset = job_id, preset
        self.status = "running"  # -> done | interrupted | failed
        self.error: str | None = None
        self.progress: dict[str, Any] = {}
        self.eval_loss: list[list[float]] = []
        self.metrics: dict[str, Any] | None = None
        self.started_s = time.time()
        self.control = TuneControl()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind in ("step", "start", "status", "checkpoint"):
            self.progress = {k: v for k, v in event.items() if k != "event"} | {"event": kind}
        elif kind == "eval":
            self.eval_loss.append([event["step"], event["eval_loss"]])

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "preset": self.preset, "status": self.status, "error": self.error,
                "progress": self.progress, "eval_loss": self.eval_loss, "metrics": self.metrics,
                "started_at": self.started_s}  # fmt: skip


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """The request's examples as the JSONL file `bendi tune --data` reads (validated there, by line)."""
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:MAX_EXAMPLES]), encoding="utf-8"
    )
    return path


class TuneJobs:
    def __init__(self) -> None:
        self._jobs: dict[str, TuneJob] = {}
        self._lock = threading.Lock()

    def start(self, settings: Settings, paths: DataPaths, options: TuneOptions,
              train: list[dict[str, Any]], held_out: list[dict[str, Any]] | None) -> TuneJob:  # fmt: skip
        with self._lock:
            running = next((j for j in self._jobs.values() if j.status == "running"), None)
            if running is not None:
                raise RunInProgressError(f"The tuning run {running.id} ({running.preset}) is still running; one "
                                         f"runs at a time. Follow it at GET /api/tune/{running.id}.")  # fmt: skip
            # Everything that can be checked is checked before answering: a bad request is the
            # caller's error (400/404), not a failed run to poll for.
            check_options(options)
            find_environment()
            job = TuneJob(secrets.token_hex(6), preset_for(paths, options))
            if options.resume:
                check_resumable(run_dir_for(paths, job.preset))
            uploads = paths.home / "tune" / "uploads" / job.id
            uploads.mkdir(parents=True)
            try:
                options = replace(options, data=write_rows(uploads / "train.jsonl", train),
                                  eval_data=write_rows(uploads / "eval.jsonl", held_out) if held_out else None)  # fmt: skip
                for path in (options.data, options.eval_data):
                    if path is not None:
                        load_tune_data(path)  # every bad example named by its line (= index + 1)
            except BaseException:
                shutil.rmtree(uploads, ignore_errors=True)
                raise
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, settings, paths, options), name=f"bendi-tune-{job.id}",
                         daemon=True).start()  # fmt: skip
        return job

    def _run(self, job: TuneJob, settings: Settings, paths: DataPaths, options: TuneOptions) -> None:
        try:
            job.metrics = run_tune(settings, paths, options, job.on_event, job.control).metrics
            job.status = "done"
        except TuneInterrupted as stopped:
            job.status, job.error = "interrupted", stopped.message
        except BendiError as exc:
            job.status, job.error = "failed", exc.message
        except Exception as exc:  # a bug must still end the job, not leave it "running"
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"

    def get(self, job_id: str) -> TuneJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(
                f"No tuning run {job_id!r} in this server's life. List them with GET /api/tune."
            )
        return job

    def all(self) -> list[TuneJob]:
        return sorted(self._jobs.values(), key=lambda j: j.started_s, reverse=True)
