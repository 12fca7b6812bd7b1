"""Tables as Markdown: a header row, a separator, one line per row; readable by people and models."""

from __future__ import annotations

from collections.abc import Sequence

from bendi.knowledge.records import Block

MAX_CELL_CHARS = 400  # a "cell" longer than this is a text box drawn as a table; keep it readable


def clean_rows(rows: Sequence[Sequence[str | None]]) -> list[list[str]]:
    """Cells as single-line text, empty rows and columns dropped, rows padded to one width."""
    cleaned = [[" ".join((cell or "").split())[:MAX_CELL_CHARS] for cell in row] for row in rows]
    cleaned = [row for row in cleaned if any(row)]
    if not cleaned:
        return []
    width = max(len(row) for row in cleaned)
    cleaned = [row + [""] * (width - len(row)) for row in cleaned]
    keep = [i for i in range(width) if any(row[i] for row in cleaned)]
    return [[row[i] for i in keep] for row in cleaned]


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(_escape(c) for c in cells) + " |"


def markdown_table(rows: list[list[str]]) -> str:
    header, body = rows[0], rows[1:]
    lines = [markdown_row(header), "| " + " | ".join("---" for _ in header) + " |"]
    lines.extend(markdown_row(row) for row in body)
    return "\n".join(lines)


def table_block(
    rows: Sequence[Sequence[str | None]], page: int | None, heading: tuple[str, ...]
) -> Block | None:
    """One table block, or None for a table with no text. A one-column "table" is a framed paragraph."""
    cleaned = clean_rows(rows)
    if not cleaned:
        return None
    if len(cleaned[0]) == 1 or len(cleaned) == 1:
        return Block("\n".join(" ".join(c for c in row if c) for row in cleaned), page, heading)
    # Title rows merged across the table ("表1 瓦斯浓度限值") are its caption, not its header.
    caption = []
    while len(cleaned) > 2 and sum(1 for c in cleaned[0] if c) == 1:
        caption.append(next(c for c in cleaned.pop(0) if c))
    table = markdown_table(cleaned)
    return Block("\n".join([*caption, table]), page, heading, kind="table")
