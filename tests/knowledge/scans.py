"""Scans made from real text: regulation pages rendered with a CJK font, then degraded like a scanner."""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
A4_MM = (210, 297)
MARGIN_MM = 25
FONT_PT = 12  # body text of a printed regulation (小四)
LINE_SPACING = 1.6


@dataclass(frozen=True)
class ScanStyle:
    """How a page is scanned: resolution, sensor noise (std of grey levels), blur radius at 200 dpi,
    and skew in degrees (a sheet laid slightly crooked on the glass)."""

    dpi: int = 200
    noise: float = 6.0
    blur: float = 0.6
    rotation_deg: float = 0.4
    seed: int = 0

    @property
    def label(self) -> str:
        return f"{self.dpi}dpi/noise{self.noise:g}/blur{self.blur:g}/rot{self.rotation_deg:g}"


@dataclass(frozen=True)
class ScannedPage:
    image: Image.Image
    text: str  # the characters printed on the page, in reading order, one line per printed line


def regulation_paragraphs(path: Path) -> list[str]:
    """A LawRefBook Markdown regulation as printed paragraphs: title, chapter lines, articles."""
    raw = path.read_text(encoding="utf-8")
    title = next((line[2:].strip() for line in raw.splitlines() if line.startswith("# ")), path.stem)
    body = raw.split("<!-- INFO END -->", 1)[-1]
    out = [title]
    for line in body.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            out.append(line)
    return out


def _wrap(text: str, font: ImageFont.FreeTypeFont, width_px: int, indent_px: int) -> list[tuple[int, str]]:
    """(x offset, line) pairs: the first line indented by two characters, as Chinese print does."""
    lines: list[tuple[int, str]] = []
    current, x0 = "", indent_px
    for ch in text:
        if current and font.getlength(current + ch) > width_px - x0:
            lines.append((x0, current))
            current, x0 = "", 0
        current += ch
    if current:
        lines.append((x0, current))
    return lines


def render_pages(paragraphs: list[str], style: ScanStyle, max_pages: int | None = None) -> list[ScannedPage]:
    """Typeset paragraphs on A4 pages at style.dpi and degrade each page like a scan."""
    px = style.dpi / 25.4
    width, height = int(A4_MM[0] * px), int(A4_MM[1] * px)
    margin = int(MARGIN_MM * px)
    font = ImageFont.truetype(str(FONT), int(FONT_PT * style.dpi / 72))
    line_h = int(FONT_PT * style.dpi / 72 * LINE_SPACING)
    char_w = int(font.getlength("中"))
    pages: list[ScannedPage] = []
    image, draw, y, printed = _blank(width, height), None, margin, []
    draw = ImageDraw.Draw(image)
    for paragraph in paragraphs:
        centred = (
            len(paragraph) <= 20 and not paragraph.startswith("第") or re.match(r"^第.{1,4}[章节]", paragraph)
        )
        for x0, line in _wrap(paragraph, font, width - 2 * margin, 0 if centred else 2 * char_w):
            if y + line_h > height - margin:
                pages.append(ScannedPage(_degrade(image, style, len(pages)), "\n".join(printed)))
                if max_pages is not None and len(pages) >= max_pages:
                    return pages
                image, y, printed = _blank(width, height), margin, []
                draw = ImageDraw.Draw(image)
            x = (width - int(font.getlength(line))) // 2 if centred else margin + x0
            draw.text((x, y), line, font=font, fill=0)
            printed.append(line)
            y += line_h
    if printed:
        pages.append(ScannedPage(_degrade(image, style, len(pages)), "\n".join(printed)))
    return pages


def _blank(width: int, height: int) -> Image.Image:
    return Image.new("L", (width, height), 255)


def _degrade(image: Image.Image, style: ScanStyle, page: int) -> Image.Image:
    import numpy as np

    rng = random.Random(style.seed * 1000 + page)
    if style.rotation_deg:
        angle = style.rotation_deg * rng.choice((-1, 1)) * rng.uniform(0.5, 1.0)
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    if style.blur:
        image = image.filter(ImageFilter.GaussianBlur(style.blur * style.dpi / 200))
    if style.noise:
        pixels = np.asarray(image, dtype=np.float32)
        noise = np.random.default_rng(style.seed * 1000 + page).normal(0, style.noise, pixels.shape)
        image = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))
    return image


def save_pdf(pages: list[ScannedPage], path: Path, dpi: int) -> Path:
    """An image-only PDF, as a scanner writes it (JPEG-compressed greyscale pages, no text layer)."""
    images = [p.image for p in pages]
    images[0].save(path, "PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return path


def save_tiff(pages: list[ScannedPage], path: Path, dpi: int) -> Path:
    images = [p.image for p in pages]
    images[0].save(path, "TIFF", dpi=(dpi, dpi), compression="tiff_deflate", save_all=True,
                   append_images=images[1:])  # fmt: skip
    return path


def normalize(text: str) -> str:
    """What CER compares: NFKC (full-width punctuation and digits as OCR may return them), no spaces."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(recognized: str, truth: str) -> float:
    """Character error rate of recognized text against the printed text (both normalized)."""
    ref = normalize(truth)
    return edit_distance(normalize(recognized), ref) / max(1, len(ref))


def printed_paragraphs(paragraphs: list[str], pages: list[ScannedPage]) -> list[str]:
    """The paragraphs as far as the pages print them (the last one cut where the last page ends):
    the text copy of exactly what was scanned."""
    remaining = sum(len(p.text.replace("\n", "")) for p in pages)
    out = []
    for paragraph in paragraphs:
        if remaining <= 0:
            break
        out.append(paragraph[:remaining])
        remaining -= len(paragraph)
    return out
