"""Serves the web UI's static files at / with a strict Content-Security-Policy (registered last)."""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

from fastapi import APIRouter, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

STATIC_ROOT = Path(__file__).parent / "static"

# No inline scripts or styles, nothing from other origins: model output or a retrieved document
# that slipped past the renderer still could not run code or load a remote image.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # File names carry no content hash, so the browser revalidates every time (cheap 304s via ETag).
    "Cache-Control": "no-cache",
}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".json": "application/json; charset=utf-8", ".html": "text/html; charset=utf-8",
          ".svg": "image/svg+xml"}  # fmt: skip
# The only folders served; explicit prefixes keep the UI from shadowing any API path (a wrong API
# path stays a JSON 404/405 from the API's own routers).
STATIC_FOLDERS = ("js", "css", "i18n", "icons")

router = APIRouter(include_in_schema=False)


def _static_file(relative: str) -> Path | None:
    if "\x00" in relative or relative.startswith("/") or ".." in relative.split("/"):
        return None
    candidate = (STATIC_ROOT / relative).resolve()
    root = STATIC_ROOT.resolve()
    if root not in candidate.parents or not candidate.is_file():
        return None
    return candidate


def _etag(path: Path) -> str:
    stat = path.stat()
    return '"' + hashlib.sha256(f"{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:20] + '"'


def _serve(relative: str, request: Request) -> Response:
    path = _static_file(relative)
    if path is None:
        raise StarletteHTTPException(404, f"No such page {request.url.path}.")
    etag = _etag(path)
    headers = {**SECURITY_HEADERS, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    media_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(path.read_bytes(), media_type=media_type, headers=headers)


@router.get("/")
async def index(request: Request) -> Response:
    return _serve("index.html", request)


@router.get("/favicon.ico")
async def favicon(request: Request) -> Response:
    return _serve("icons/bendi.svg", request)


def _folder_route(folder: str) -> None:
    @router.get(f"/{folder}/{{name:path}}", name=f"ui_{folder}")
    async def asset(name: str, request: Request) -> Response:
        return _serve(f"{folder}/{name}", request)


for _folder in STATIC_FOLDERS:
    _folder_route(_folder)
