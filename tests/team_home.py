"""Switch a data directory to team mode with one administrator (a plain module the test areas import)."""

from __future__ import annotations

from pathlib import Path

from bendi.access.control import AccessControl
from bendi.core.paths import DataPaths
from bendi.core.settings import load_settings


def init_team_home(home: Path, admin_name: str, admin_password: str, *, key_name: str = "tests") -> str:
    """Team mode on `home` with administrator `admin_name`; returns an admin-scope API key."""
    access = AccessControl(load_settings(home=home), DataPaths(home).ensure())
    try:
        admin, _ = access.init_team(admin_name, admin_password)
        key, _ = access.keys.create(admin, name=key_name, scope="admin")
    finally:
        access.close()
    return key
