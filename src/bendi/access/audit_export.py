"""Audit export formats: JSON lines, and CSV that a spreadsheet opens without running formulas."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from bendi.access.audit_chain import COLUMNS, canonical_json

CSV_HEADER = (*COLUMNS[:2], "time", *COLUMNS[2:], "prev_hash", "hash")
# OWASP's formula starters, plus "'" itself so that unescaping a cell is exact.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def write_export(out: TextIO, records: Iterable[Mapping[str, Any]], fmt: str) -> int:
    """Write records (each `AuditRecord.to_json()`) as "jsonl" or "csv"; returns how many."""
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_HEADER)
    count = 0
    for record in records:
        if writer is None:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            writer.writerow(csv_row(record))
        count += 1
    return count


def csv_row(record: Mapping[str, Any]) -> list[object]:
    """One record as CSV cells: documents joined by ';', detail as JSON, text cells escaped."""
    values = dict(record)
    values["documents"] = ";".join(str(name) for name in record["documents"])
    values["detail"] = canonical_json(record["detail"])
    cells: list[object] = []
    for name in CSV_HEADER:
        value = values[name]
        cells.append("" if value is None else escape_csv_cell(value) if isinstance(value, str) else value)
    return cells


def escape_csv_cell(text: str) -> str:
    """Neutralize a cell a spreadsheet would evaluate as a formula (OWASP: prefix a single quote)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def unescape_csv_cell(text: str) -> str:
    """The inverse of `escape_csv_cell`, for reading an export back."""
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_STARTS) else text
