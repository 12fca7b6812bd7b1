"""Fixtures for the advisor tests: recorded-format GPU outputs and named machine profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def advisor_fixtures() -> Path:
    return FIXTURES
