"""The web UI works with no network at all and loads nothing from elsewhere (real Chromium in a namespace
without a route), and its Content-Security-Policy says so."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bendi.ui.routes import STATIC_ROOT
from server_process import free_port

HERE = Path(__file__).resolve().parent
# What a page may fetch from: its own origin; images may also be inline data: URLs.
ALLOWED_SOURCES = {"'self'", "'none'", "data:"}
FETCH_DIRECTIVES = ("default-src", "script-src", "style-src", "img-src", "font-src", "connect-src",
                    "manifest-src", "media-src", "object-src", "frame-src", "worker-src")  # fmt: skip
# A reference that leaves the origin: a scheme, or a protocol-relative //host.
_EXTERNAL_REF = re.compile(
    r"""(?:src|href)\s*=\s*["'](?:[a-z][a-z0-9+.-]*:|//)|url\(\s*["']?(?:[a-z][a-z0-9+.-]*:|//)|@import""",
    re.IGNORECASE,
)


def _csp(header: str) -> dict[str, set[str]]:
    directives: dict[str, set[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = set(words[1:])
    return directives


def test_ui_sources_reference_nothing_outside_the_origin() -> None:
    offenders = []
    for path in sorted(STATIC_ROOT.rglob("*")):
        if path.suffix in (".html", ".css", ".js"):
            for match in _EXTERNAL_REF.finditer(path.read_text(encoding="utf-8")):
                if not match.group(0).lower().rstrip("\"' (").endswith("data:"):
                    offenders.append(f"{path.relative_to(STATIC_ROOT)}: {match.group(0)}")
    assert not offenders, offenders


def test_ui_in_chromium_without_network(tmp_path: Path, artifacts: Path) -> None:
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
        pytest.skip("Debian chromium and chromium-driver are not installed")
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here (needs root: `unshare -n`)")
    home, report_path, port = tmp_path / "home", tmp_path / "report.json", free_port()
    home.mkdir()
    env = {"BENDI_HOME": str(home), "BENDI_THREADS": "2", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [unshare, "-n", "env", *(f"{k}={v}" for k, v in env.items()), sys.executable,
         str(HERE / "ui_offline_session.py"), str(report_path), str(port), str(artifacts / "ui-offline.png")],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert done.returncode == 0 and report_path.exists(), done.stderr[-3000:]
    report: dict[str, Any] = json.loads(report_path.read_text())
    serve_log = (
        (home / "serve.log").read_text(errors="replace")[-2000:] if (home / "serve.log").exists() else ""
    )
    assert "error" not in report, report.get("error", "") + "\n" + serve_log
    assert "Network is unreachable" in report["no_route"]
    assert report["answer"], "the UI showed no answer"
    origin = f"http://127.0.0.1:{port}"
    urls: list[str] = report["urls"]
    # The positive control: the page's own files were seen, so an external one would have been too.
    assert any(u.endswith("/css/app.css") for u in urls) and any(u.endswith("/js/app.js") for u in urls), urls
    foreign = [u for u in urls if not (u.startswith(origin + "/") or urlsplit(u).scheme in ("data", "blob"))]
    assert not foreign, foreign
    assert all(href is None or href.startswith(origin + "/") for href in report["stylesheets"]), report
    assert report["console"] == [], report["console"]  # a CSP violation or a failed load would be here
    for path, headers in report["headers"].items():
        policy = _csp(headers.get("content-security-policy", ""))
        assert "default-src" in policy, (path, headers)
        for directive in FETCH_DIRECTIVES:
            assert policy.get(directive, set()) <= ALLOWED_SOURCES, (path, directive, policy[directive])
        assert "'unsafe-inline'" not in str(policy) and "'unsafe-eval'" not in str(policy)
