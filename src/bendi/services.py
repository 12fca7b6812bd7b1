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
    from bendi.access.accounts import User
    from bendi.access.control import AccessControl
    from bendi.catalog.advisor import FitVerdict
    from bendi.conversations import ConversationStore
    from bendi.engines.pool import EnginePool
    from bendi.engines.protocol import EngineInfo
    from bendi.knowledge.library import KnowledgeBases
    from bendi.store.resolve import LocalModel
    from bendi.store.store import Store


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

        pool = EnginePool(self.settings, self.paths, fit_check=self._advisor_fit_check)
        self._closers.append(pool)
        return pool

    def _advisor_fit_check(
        self, model: LocalModel, context_tokens: int, loaded: list[EngineInfo]
    ) -> FitVerdict:
        """The advisor's verdict for loading `model` next to the loaded ones, from its GGUF header."""
        from bendi.catalog.advisor import check_fit
        from bendi.catalog.estimate import model_facts_from_gguf
        from bendi.hardware.probe import probe
        from bendi.store.gguf import read_gguf

        info = read_gguf(model.path)
        facts = model_facts_from_gguf(
            info.metadata, model.size_bytes, model.name, params=info.parameter_count
        )
        # Loaded weights are mmapped: the OS counts them as reclaimable cache, so "available" memory
        # overstates what is free by about their size.
        loaded_weights = sum(engine.file_bytes for engine in loaded)
        return check_fit(
            facts, context_tokens * self.settings.parallel_sequences, probe(self.paths.home), loaded_weights
        )

    @cached_property
    def access(self) -> AccessControl:
        """Accounts, keys, sessions, access lists, policy, audit and usage (organization mode)."""
        from bendi.access.control import AccessControl

        return AccessControl(self.settings, self.paths)

    @cached_property
    def store(self) -> Store:
        """The model store (pull, import, list, show, remove); the Ollama/pull APIs call it too."""
        from bendi.store.store import Store

        return Store(self.settings, self.paths)

    @cached_property
    def conversations(self) -> ConversationStore:
        from bendi.conversations import ConversationStore

        return ConversationStore(self.paths.conversations_db)

    @cached_property
    def knowledge(self) -> KnowledgeBases:
        from bendi.knowledge.embedding import make_embedder
        from bendi.knowledge.library import KnowledgeBases
        from bendi.knowledge.rerank import load_reranker

        threads = self.settings.threads
        return KnowledgeBases(
            self.paths,
            self.settings.embedding_model,
            lambda name: make_embedder(name, threads=threads, acquire=self.engines.acquire),
            reranker=lambda: load_reranker(self.settings.kb_reranker, threads=threads),
            query_rewrite=self.settings.kb_query_rewrite,
        )

    def init_team(self, username: str, password: str | None) -> tuple[User, str | None]:
        """Switch to team mode with a first administrator, who keeps the single-user conversations."""
        from bendi.access.principal import LOCAL_OWNER

        user, generated = self.access.init_team(username, password)
        self.conversations.reassign(LOCAL_OWNER, user.id)
        return user, generated

    async def aclose(self) -> None:
        for closer in reversed(self._closers):
            await closer.aclose()
        self._closers.clear()


def build_services(settings: Settings) -> Services:
    # Before anything opens a database: data from a newer bendi is refused, older data is backed up
    # and migrated forward (ops/migrations.py).
    from bendi.ops.migrations import prepare_data_dir

    prepare_data_dir(settings.home)
    return Services(settings=settings)
