"""Offline OCR on CPU: rapidocr's PP-OCR models from inside its wheel, run by onnxruntime."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bendi.core.errors import DocumentError

if TYPE_CHECKING:
    from PIL.Image import Image

# A page larger than this (about A3 at 400 dpi) is shrunk before recognition: detection works on
# at most ~2000 px per side anyway, and a bigger bitmap only costs memory.
MAX_OCR_PIXELS = 24_000_000
MIN_LINE_SCORE = 0.5  # rapidocr's own default: below it a "line" is usually a smudge or a stamp
_ARTICLE_START = re.compile(r"^\s*第[一二三四五六七八九十百千零〇两\d]+(?:条|章|节|编)")
_SENTENCE_END = ("。", "！", "？", "；", ":", "：", "!", "?")


class OcrUnavailableError(DocumentError):
    """rapidocr or onnxruntime is missing, or its bundled models are not where the wheel puts them."""


@dataclass(frozen=True)
class OcrLine:
    """One recognized line with its box in page pixels (x0, y0 top left; x1, y1 bottom right)."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def height(self) -> float:
        return max(1.0, self.y1 - self.y0)


def bundled_models() -> dict[str, Path]:
    """The detection, recognition and orientation models shipped in the rapidocr wheel.

    Passing explicit model paths is what keeps rapidocr offline: given no path it looks the model
    up in its download table and fetches it from the internet when the file is missing."""
    try:
        import onnxruntime  # noqa: F401  (checked here so the error names it)
        import rapidocr
    except ImportError as exc:
        raise OcrUnavailableError(
            f"OCR needs the rapidocr and onnxruntime packages ({exc.name} is missing); "
            "reinstall bendi with its default dependencies."
        ) from exc
    folder = Path(rapidocr.__file__).parent / "models"
    found: dict[str, Path] = {}
    for role, pattern in (("det", "*_det_*.onnx"), ("rec", "*_rec_*.onnx"), ("cls", "*_cls_*.onnx")):
        candidates = sorted(folder.glob(pattern), reverse=True)  # PP-OCRv6 before PP-OCRv4
        if candidates:
            found[role] = candidates[0]
    if "det" not in found or "rec" not in found:
        raise OcrUnavailableError(
            f"The installed rapidocr has no bundled models in {folder}; install a rapidocr wheel "
            "that ships them (bendi never downloads models while indexing)."
        )
    return found


class OcrEngine:
    """One rapidocr pipeline. Thread-safe by a lock: onnxruntime already uses `threads` cores per call."""

    def __init__(self, threads: int = 2) -> None:
        from rapidocr import RapidOCR

        models = bundled_models()
        params: dict[str, Any] = {
            "Global.log_level": "warning",
            # The per-line 180° classifier flips some clean, upright lines and loses them (on the
            # rendered-scan set: CER 4.1% with it, 0% without, at 200 dpi); office scans are upright.
            "Global.use_cls": False,
            "Global.text_score": MIN_LINE_SCORE,
            "Det.model_path": str(models["det"]),
            "Rec.model_path": str(models["rec"]),
            "EngineConfig.onnxruntime.intra_op_num_threads": max(1, threads),
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        if "cls" in models:  # never used, but rapidocr loads it: from the wheel, not the internet
            params["Cls.model_path"] = str(models["cls"])
        self._ocr = RapidOCR(params=params)
        self._lock = threading.Lock()
        self.threads = threads

    def read(self, image: Image) -> list[OcrLine]:
        """Lines of one page image, in reading order (top to bottom, then left to right)."""
        import numpy as np

        image = _fit(image.convert("RGB"))
        with self._lock:
            result = self._ocr(np.asarray(image))
        boxes = getattr(result, "boxes", None)
        texts = getattr(result, "txts", None) or ()
        scores = getattr(result, "scores", None) or ()
        if boxes is None:
            return []
        lines = []
        for box, text, score in zip(boxes, texts, scores, strict=False):
            xs = [float(p[0]) for p in box]
            ys = [float(p[1]) for p in box]
            if text.strip():
                lines.append(OcrLine(text.strip(), min(xs), min(ys), max(xs), max(ys), float(score)))
        return order_lines(lines)


def _fit(image: Image) -> Image:
    width, height = image.size
    if width * height <= MAX_OCR_PIXELS:
        return image
    scale = (MAX_OCR_PIXELS / (width * height)) ** 0.5
    return image.resize((max(1, int(width * scale)), max(1, int(height * scale))))


def order_lines(lines: list[OcrLine]) -> list[OcrLine]:
    """Merge boxes on one visual row (their vertical centres within half a line) and sort them."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda ln: (ln.y0 + ln.y1) / 2):
        centre = (line.y0 + line.y1) / 2
        if rows:
            last = rows[-1]
            last_centre = sum((ln.y0 + ln.y1) / 2 for ln in last) / len(last)
            if abs(centre - last_centre) < 0.5 * min(line.height, last[0].height):
                last.append(line)
                continue
        rows.append([line])
    merged = []
    for row in rows:
        row.sort(key=lambda ln: ln.x0)
        text = row[0].text
        for left, right in zip(row, row[1:], strict=False):
            gap = right.x0 - left.x1
            text += (" " if gap > 0.6 * left.height else "") + right.text  # a wide gap is a column gap
        merged.append(OcrLine(text, min(ln.x0 for ln in row), min(ln.y0 for ln in row),
                              max(ln.x1 for ln in row), max(ln.y1 for ln in row),
                              min(ln.score for ln in row)))  # fmt: skip
    return merged


def lines_to_paragraphs(lines: list[OcrLine]) -> list[str]:
    """Join wrapped lines back into paragraphs, as a reader would.

    A line ends its paragraph when it ends a sentence, stops well short of the text's right edge,
    or is followed by an indented line or a 第X条/章/节 line; otherwise the next line continues it
    (Chinese wraps mid-sentence with no space)."""
    if not lines:
        return []
    # The text column's edges, robust to page numbers, margin notes and stamps outside it.
    lefts = sorted(ln.x0 for ln in lines)
    rights = sorted(ln.x1 for ln in lines)
    left_edge = lefts[len(lefts) // 5]
    right_edge = rights[-(len(rights) // 5) - 1]
    paragraphs: list[str] = []
    current = ""
    for i, line in enumerate(lines):
        if current:
            previous = lines[i - 1]
            indented = line.x0 - left_edge > 1.5 * line.height
            starts_new = indented or bool(_ARTICLE_START.match(line.text))
            short = right_edge - previous.x1 > 2.5 * previous.height and previous.x0 <= right_edge
            if starts_new or short or previous.text.endswith(_SENTENCE_END):
                paragraphs.append(current)
                current = ""
        current = _join(current, line.text) if current else line.text
    if current:
        paragraphs.append(current)
    return paragraphs


def _join(left: str, right: str) -> str:
    if left[-1].isascii() and right[0].isascii() and left[-1].isalnum() and right[0].isalnum():
        return f"{left} {right}"
    return left + right
