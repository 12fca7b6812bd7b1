"""Fixtures of the presets area: the web-UI tests' Chromium (tests/ui/conftest.py's own driver set-up,
loaded under another module name so both areas can run in one session)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_UI = Path(__file__).resolve().parents[1] / "ui"
sys.path.insert(0, str(_UI))  # pages.py: the UI tests' page helpers
_spec = importlib.util.spec_from_file_location("ui_fixtures_for_presets", _UI / "conftest.py")
assert _spec is not None and _spec.loader is not None
_ui = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ui)

browser_factory = _ui.browser_factory
artifacts = _ui.artifacts
