"""Fixtures of the access tests: a real OpenLDAP server (see access/slapd.py for its directory)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from access.slapd import SlapdServer, slapd_binary, start_slapd


@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """One populated slapd for the session (read-only use; start_slapd() for one you may break)."""
    if slapd_binary() is None:
        pytest.skip(
            "slapd is not installed (Debian: apt-get install slapd ldap-utils); LDAP tests need a real one"
        )
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()
