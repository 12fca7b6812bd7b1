"""Whether and how ingestion OCRs: the settings (on by default) and the installed packages."""

from __future__ import annotations

from bendi.core.settings import load_settings
from bendi.knowledge.ocr import OcrUnavailableError, bundled_models
from bendi.knowledge.ocr_pool import OcrReader, PageCallback


def ocr_reader(on_page: PageCallback | None = None) -> tuple[OcrReader | None, str]:
    """A reader for one document, or None and the reason (said to the user) why scans are not read."""
    settings = load_settings()
    if not settings.kb_ocr:
        return None, "and OCR is turned off (setting kb_ocr, BENDI_KB_OCR=1 turns it on)."
    try:
        bundled_models()
    except OcrUnavailableError as exc:
        return None, f"but OCR is not available here: {exc.message}"
    return OcrReader(threads=settings.kb_ocr_threads, on_page=on_page), ""
