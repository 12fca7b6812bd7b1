"""Installed models recorded in the store's manifests (filled in by the model-store issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bendi.core.paths import DataPaths

if TYPE_CHECKING:
    from bendi.store.resolve import LocalModel


def find_installed(paths: DataPaths, name: str) -> LocalModel | None:
    """The installed model called `name`, or None."""
    return None


def list_installed(paths: DataPaths) -> list[LocalModel]:
    return []
