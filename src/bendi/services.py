"""Composition root: builds the long-lived objects from Settings, once, lazily.

Each attribute is built on first use, so `bendi doctor` never loads llama.cpp and `bendi kb search`
never starts a server. Layers reach these through typed dependencies, never module globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bendi.core.paths import DataPaths
from bendi.core.settings import Settings

if TYPE_CHECKING:
    from bendi.engines.pool import EnginePool


@dataclass
class Services:
    settings: Settings
    _closers: list[Any] = field(default_factory=list, repr=False)

    @cached_property
    def paths(self) -> DataPaths:
        return DataPaths(self.settings.home).ensure()

    @cached_property
    def engines(self) -> EnginePool:
        from bendi.engines.pool import EnginePool

        pool = EnginePool(self.settings, self.paths)
        self._closers.append(pool)
        return pool

    async def aclose(self) -> None:
        for closer in reversed(self._closers):
            await closer.aclose()
        self._closers.clear()


def build_services(settings: Settings) -> Services:
    return Services(settings=settings)
