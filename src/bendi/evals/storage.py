"""Evaluation reports on disk: one JSON file per run under <data dir>/evals, named by the server.

Report ids are generated here and checked against one pattern on every read, so an id from a URL
can never name a file outside the folder. Writes go through a temporary file and a rename, so a
crash mid-write leaves the previous report (or none), never half of one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from bendi.core.errors import NotFoundError
from bendi.core.paths import DataPaths

_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{8}")
SUMMARY_KEYS = ("id", "suite", "status", "started_at", "finished_at", "error", "progress")


def evals_dir(paths: DataPaths) -> Path:
    # Beside the other per-feature folders of the data dir (knowledge/, logs/); created on first use.
    return paths.home / "evals"


def new_report_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


def _path(paths: DataPaths, report_id: str) -> Path:
    if not _ID.fullmatch(report_id):
        raise NotFoundError(f"No evaluation report {report_id!r}. List them with GET /api/evals.")
    return evals_dir(paths) / f"{report_id}.json"


def save_report(paths: DataPaths, report: dict[str, Any]) -> Path:
    """Write (or overwrite) the report whose "id" is set; returns its path."""
    target = _path(paths, report["id"])
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(temporary, target)
    return target


def load_report(paths: DataPaths, report_id: str) -> dict[str, Any]:
    path = _path(paths, report_id)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"No evaluation report {report_id!r}. List them with GET /api/evals.") from None
    return data


def list_reports(paths: DataPaths) -> list[dict[str, Any]]:
    """Newest first, each reduced to its summary plus the per-model headline metrics."""
    folder = evals_dir(paths)
    if not folder.is_dir():
        return []
    summaries = []
    for path in sorted(folder.glob("*.json"), reverse=True):
        if not _ID.fullmatch(path.stem):
            continue
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # a damaged file must not hide every other report
            continue
        summary = {key: report.get(key) for key in SUMMARY_KEYS}
        summary["models"] = {label: {"metrics": data.get("metrics", {})}
                             for label, data in (report.get("models") or {}).items()}  # fmt: skip
        summaries.append(summary)
    return summaries
