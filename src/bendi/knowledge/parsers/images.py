"""Scanned images (PNG, JPEG, TIFF incl. multi-page, BMP, WebP): sizes checked before decoding, then OCR."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bendi.core.errors import DocumentError
from bendi.knowledge.records import Block, ParsedDocument

if TYPE_CHECKING:
    from PIL.Image import Image

    from bendi.knowledge.ocr_pool import OcrReader

# A page scanned at 600 dpi on A3 is ~70 megapixels; anything bigger is a decompression bomb or an
# error, and decoding it would take gigabytes.
MAX_IMAGE_PIXELS = 80_000_000
MAX_PAGES = 2000  # frames of a multi-page TIFF, pages of a PDF
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")


def is_image(head: bytes) -> bool:
    """PNG, JPEG, TIFF, WebP, or BMP ("BM" alone starts plain text too: its reserved bytes must be 0)."""
    bmp = head[:2] == b"BM" and head[6:10] == b"\0\0\0\0"
    return head.startswith(IMAGE_MAGIC) or bmp or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def check_pixels(width: int, height: int, what: str) -> None:
    if width <= 0 or height <= 0 or width * height > MAX_IMAGE_PIXELS:
        raise DocumentError(
            f"{what} is {width}×{height} pixels, more than the {MAX_IMAGE_PIXELS // 1_000_000} megapixels "
            "bendi decodes; scan it at 300 dpi or less and add it again."
        )


def _open(path: Path) -> Image:
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        return PILImage.open(path)  # reads the header only; pixels are decoded on load()
    except PILImage.DecompressionBombError as exc:
        raise DocumentError(
            f"{path.name} claims more than {MAX_IMAGE_PIXELS // 1_000_000} megapixels ({exc}); bendi does not "
            "decode images that large. Scan it at 300 dpi or less and add it again."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DocumentError(f"{path.name} is not a readable image ({exc}); it may be damaged.") from exc


def frame_count(path: Path) -> int:
    with _open(path) as image:
        count = int(getattr(image, "n_frames", 1) or 1)
    if count > MAX_PAGES:
        raise DocumentError(f"{path.name} has {count} pages; bendi reads at most {MAX_PAGES} per file.")
    return count


def frame_loader(path: Path, index: int) -> Callable[[], Image]:
    """Decodes frame `index` when called (one page in memory at a time), after checking its size."""

    def load() -> Image:
        from PIL import ImageOps

        with _open(path) as image:
            image.seek(index)
            check_pixels(image.size[0], image.size[1], f"Page {index + 1} of {path.name}")
            image.load()
            # Phones store "rotate by 90°" as an EXIF tag instead of turning the pixels.
            upright = ImageOps.exif_transpose(image)
            return (upright if upright is not None else image).convert("RGB")

    return load


def parse_image(path: Path, ocr: OcrReader | None) -> ParsedDocument:
    pages = frame_count(path)
    if ocr is None:
        return ParsedDocument(title=path.stem, blocks=(), pages=pages, needs_ocr=True)
    texts = ocr.read_pages([(i + 1, frame_loader(path, i)) for i in range(pages)])
    blocks = tuple(Block(p, number) for number in sorted(texts) for p in texts[number])
    if not blocks and ocr.failures:
        raise DocumentError(f"OCR could not read {path.name}: {'; '.join(ocr.failures[:3])}.")
    return ParsedDocument(title=path.stem, blocks=blocks, pages=pages, warnings=ocr.warnings())
