"""Per-page PDF helpers: image size checks, rendering a page for OCR (pdfium), ruled tables (pdfplumber)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bendi.core.errors import DocumentError
from bendi.knowledge.parsers.images import MAX_IMAGE_PIXELS, check_pixels
from bendi.knowledge.parsers.tables import table_block
from bendi.knowledge.records import Block

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger("bendi.knowledge")

OCR_DPI = 200  # enough for 5-pt Chinese; more only slows recognition (rapidocr shrinks big pages)
MAX_RENDER_PIXELS = 16_000_000  # a page bigger than A2 at 200 dpi is rendered at a lower resolution
MAX_FORM_DEPTH = 4
# pdfium is not thread-safe; two documents parsed at once (CLI and server share no process, but
# tests and future workers may) take turns.
_PDFIUM = threading.Lock()
# Ruled tables are drawn with rectangles and lines; a page with fewer such operators has none,
# and skipping it avoids pdfplumber's (pure-Python) layout analysis on every text page.
MIN_TABLE_OPERATORS = 8


def image_problem(page: Any, number: int) -> str | None:
    """Why a page's images must not be decoded (declared size over the cap), or None."""
    try:
        for width, height in _declared_images(page.get("/Resources"), 0):
            if width * height > MAX_IMAGE_PIXELS:
                return (f"page {number}: an image of {width}×{height} pixels, more than the "
                        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels bendi decodes")  # fmt: skip
    except Exception as exc:
        return f"page {number}: its images cannot be inspected ({type(exc).__name__})"
    return None


def _declared_images(resources: Any, depth: int) -> list[tuple[int, int]]:
    if resources is None or depth > MAX_FORM_DEPTH:
        return []
    resources = resources.get_object()
    xobjects = resources.get("/XObject")
    found: list[tuple[int, int]] = []
    if xobjects is None:
        return found
    for ref in xobjects.get_object().values():
        xobject = ref.get_object()
        subtype = xobject.get("/Subtype")
        if subtype == "/Image":
            found.append((int(xobject.get("/Width", 0)), int(xobject.get("/Height", 0))))
        elif subtype == "/Form":
            found.extend(_declared_images(xobject.get("/Resources"), depth + 1))
    return found


def render_loader(path: Path, number: int) -> Callable[[], Image]:
    """Renders page `number` (1-based) when called, one page in memory at a time."""

    def load() -> Image:
        import pypdfium2 as pdfium

        with _PDFIUM:
            document = pdfium.PdfDocument(str(path))
            try:
                page = document[number - 1]
                width_pt, height_pt = page.get_size()
                scale = OCR_DPI / 72
                pixels = width_pt * height_pt * scale * scale
                if pixels > MAX_RENDER_PIXELS:
                    scale *= (MAX_RENDER_PIXELS / pixels) ** 0.5
                check_pixels(int(width_pt * scale), int(height_pt * scale), f"Page {number}")
                bitmap = page.render(scale=scale, grayscale=True)
                image: Image = bitmap.to_pil().convert("RGB")
                page.close()
                return image
            except DocumentError:
                raise
            except Exception as exc:
                raise DocumentError(f"pdfium could not render it ({type(exc).__name__}: {exc})") from exc
            finally:
                document.close()

    return load


def _draws_lines(page: Any) -> bool:
    try:
        contents = page.get_contents()
        data = contents.get_data() if contents is not None else b""
    except Exception:
        return False
    return data.count(b" re") + data.count(b" l\n") + data.count(b" l ") >= MIN_TABLE_OPERATORS


class TableFinder:
    """Ruled tables on text-layer pages, as Markdown table blocks in reading order with the text."""

    def __init__(self, path: Path, clean: Callable[[str], list[str]]) -> None:
        self._path = path
        self._clean = clean
        self._pdf: Any = None
        self._broken = False

    def blocks(self, page: Any, number: int, paragraphs: list[str]) -> list[Block]:
        plain = [Block(p, number) for p in paragraphs]
        if self._broken or not paragraphs or not _draws_lines(page):
            return plain
        try:
            found = self._tables(number)
        except Exception as exc:  # table detection is a refinement: fall back to the plain text
            log.warning("table detection failed on page %s of %s: %s", number, self._path.name, exc)
            return plain
        return found if found is not None else plain

    def _tables(self, number: int) -> list[Block] | None:
        if self._pdf is None:
            import pdfplumber

            self._pdf = pdfplumber.open(str(self._path))
        page = self._pdf.pages[number - 1]
        tables = sorted(page.find_tables(), key=lambda t: t.bbox[1])
        tables = [t for t in tables if len(t.rows) >= 2]
        if not tables:
            page.close()
            return None
        blocks: list[Block] = []
        top = page.bbox[1]
        for table in tables:
            blocks.extend(self._text(page, top, table.bbox[1], number))
            block = table_block(table.extract(), number, ())
            if block is not None:
                blocks.append(block)
            top = max(top, table.bbox[3])
        blocks.extend(self._text(page, top, page.bbox[3], number))
        page.close()
        return blocks

    def _text(self, page: Any, top: float, bottom: float, number: int) -> list[Block]:
        if bottom - top < 1:
            return []
        region = page.within_bbox((page.bbox[0], top, page.bbox[2], bottom))
        return [Block(p, number) for p in self._clean(region.extract_text() or "")]

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()
            self._pdf = None
