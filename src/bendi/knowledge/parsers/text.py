"""Plain-text family parsers: TXT (encoding detected), Markdown (headings), HTML, CSV (as table rows)."""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

from bendi.core.errors import DocumentError
from bendi.knowledge.records import Block, ParsedDocument

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
# Some published corpora end every line with a literal backslash-n (two characters).
_LITERAL_NEWLINE = re.compile(r"(?:\\n)+\s*$")


def decode_bytes(data: bytes, name: str) -> str:
    """UTF-8 / UTF-16 (BOM or NUL pattern) / GB18030 (a superset of GBK), in that order."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    sample = data[:4000]
    if b"\x00" in sample:
        # BOM-less UTF-16: decode both ways and keep the one that reads as text.
        best = max((_plausibility(data, codec), codec) for codec in ("utf-16-le", "utf-16-be"))
        if best[0] > 0.9:
            return data.decode(best[1], errors="replace")
        raise DocumentError(f"{name} looks like a binary file, not text; bendi cannot index it.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    guess = from_bytes(data).best()
    if guess is None:
        raise DocumentError(f"{name}: cannot tell its text encoding. Save it as UTF-8 and add it again.")
    return str(guess)


def _plausibility(data: bytes, codec: str) -> float:
    """Share of characters that are CJK, printable ASCII, common punctuation or whitespace."""
    text = data[: 8000 - 8000 % 2].decode(codec, errors="replace")
    good = sum(1 for ch in text if ch.isprintable() or ch in "\n\r\t") - text.count("\ufffd")
    return good / max(1, len(text))


def _read(path: Path) -> str:
    return decode_bytes(path.read_bytes(), path.name).replace("\r\n", "\n").replace("\r", "\n")


def split_paragraphs(text: str) -> list[str]:
    lines = [_LITERAL_NEWLINE.sub("", line).strip() for line in text.split("\n")]
    return [line for line in lines if line]


def parse_text(path: Path) -> ParsedDocument:
    paragraphs = split_paragraphs(_read(path))
    # Form feeds separate pages in text exported from PDFs; keep them as page numbers.
    blocks = tuple(Block(p) for p in paragraphs)
    title = paragraphs[0][:80] if paragraphs and len(paragraphs[0]) <= 80 else path.stem
    return ParsedDocument(title=title, blocks=blocks)


def parse_markdown(path: Path) -> ParsedDocument:
    text = _HTML_COMMENT.sub("\n", _read(path))
    headings: list[tuple[int, str]] = []
    blocks: list[Block] = []
    title = ""
    in_fence = False
    for raw in text.split("\n"):
        line = _LITERAL_NEWLINE.sub("", raw).rstrip()
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = None if in_fence else _MD_HEADING.match(line)
        if match:
            level, heading = len(match.group(1)), match.group(2).strip()
            headings = [(lv, h) for lv, h in headings if lv < level] + [(level, heading)]
            title = title or heading
            continue
        if line.strip():
            blocks.append(Block(line.strip(), None, tuple(h for _, h in headings)))
    return ParsedDocument(title=title or path.stem, blocks=tuple(blocks))


def parse_html(path: Path) -> ParsedDocument:
    import lxml.html

    data = path.read_bytes()
    try:
        root = lxml.html.document_fromstring(decode_bytes(data, path.name))
    except Exception as exc:
        raise DocumentError(f"{path.name} is not readable HTML: {exc}.") from exc
    for bad in root.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    title = (root.findtext(".//title") or "").strip() or path.stem
    headings: list[tuple[int, str]] = []
    blocks: list[Block] = []
    for element in root.iter(
        "h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "table", "pre", "blockquote", "dd"
    ):
        if element.tag != "table" and element.xpath("ancestor::table"):
            continue  # taken with its table, row by row
        heading = tuple(h for _, h in headings)
        if element.tag == "table":
            rows = [
                [" ".join(c.text_content().split()) for c in tr.xpath("./th|./td")]
                for tr in element.xpath(".//tr")
            ]
            blocks.extend(table_rows_to_blocks(rows, heading))
            continue
        text = " ".join(element.text_content().split())
        if not text:
            continue
        if element.tag[0] == "h" and element.tag[1:].isdigit():
            level = int(element.tag[1:])
            headings = [(lv, h) for lv, h in headings if lv < level] + [(level, text)]
            continue
        blocks.append(Block(text, None, heading))
    return ParsedDocument(title=title, blocks=tuple(blocks))


def table_rows_to_blocks(rows: list[list[str]], heading: tuple[str, ...]) -> list[Block]:
    """A table becomes one block per row, "header: value" pairs, so each row stands on its own."""
    rows = [[cell.strip() for cell in row] for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = rows[0]
    blocks = [Block(" | ".join(c for c in header if c), None, heading)]
    for row in rows[1:]:
        pairs = [
            f"{header[i]}: {cell}" if i < len(header) and header[i] else cell
            for i, cell in enumerate(row)
            if cell
        ]
        blocks.append(Block("; ".join(pairs), None, heading))
    return blocks


def parse_csv(path: Path) -> ParsedDocument:
    text = _read(path)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    return ParsedDocument(title=path.stem, blocks=tuple(table_rows_to_blocks(rows, (path.stem,))))
