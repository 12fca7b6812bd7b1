"""KbScope: the knowledge bases a caller may read, a required value for every knowledge-base lookup."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class KbScope:
    """`names is None` means every base; only `everything()` builds that, so no default grants it."""

    names: frozenset[str] | None

    @staticmethod
    def everything() -> KbScope:
        return KbScope(None)

    @staticmethod
    def only(names: Iterable[str]) -> KbScope:
        return KbScope(frozenset(names))

    def allows(self, kb: str) -> bool:
        return self.names is None or kb in self.names
