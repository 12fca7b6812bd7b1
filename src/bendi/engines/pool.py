"""Loaded models: load on first use, keep alive, unload idle ones, refuse what will not fit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bendi.core.errors import (
    AdapterError,
    BendiError,
    EngineError,
    ModelTooLargeError,
    OverloadedError,
    UserInputError,
)
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.engines.adapters import CheckedAdapter, adapters_bytes, adapters_identity, check_adapters
from bendi.engines.draft_choice import draft_for
from bendi.engines.engine_select import (
    EngineKind,
    hf_directory_model,
    is_hf_model,
    select_engine,
    start_server,
)
from bendi.engines.hf_model import is_hf_model_dir
from bendi.engines.protocol import Engine, EngineInfo
from bendi.engines.remote import UpstreamSpec, upstream_specs
from bendi.store.bundled import DEFAULT_BUNDLED
from bendi.store.resolve import LocalModel, installed_models, resolve_model

if TYPE_CHECKING:
    from bendi.engines.replicas import ReplicaStatus
    from bendi.engines.stats import EngineStats

log = logging.getLogger("bendi.engines")

FOREVER_S = 100 * 365 * 86400.0  # what `expires_in_s` says for a negative (never) keep-alive


@dataclass(frozen=True)
class FitVerdict:
    fits: bool
    required_bytes: int
    available_bytes: int
    reason: str = ""


class Verdict(Protocol):
    """What the pool reads from a fit check's answer (bendi.catalog.advisor.FitVerdict has it)."""

    @property
    def fits(self) -> bool: ...
    @property
    def required_bytes(self) -> int: ...
    @property
    def available_bytes(self) -> int: ...
    @property
    def reason(self) -> str: ...


# (model, context tokens per sequence, models loaded now) -> verdict; None means "cannot tell": load.
FitCheck = Callable[[LocalModel, int, list[EngineInfo]], "Verdict | None"]
EngineFactory = Callable[[LocalModel, Settings], Engine]
# (model, engine kind, settings, paths) -> a started engine server (engines/server_engine.py)
ServerFactory = Callable[[LocalModel, EngineKind, Settings, DataPaths], Awaitable[Engine]]


def kv_cache_bytes(model: LocalModel, context_tokens: int) -> int:
    """f16 K and V for every layer and token, from the GGUF header (0 when it cannot be read)."""
    from bendi.store.gguf import read_gguf

    try:
        info = read_gguf(model.path)
    except Exception:  # a header we cannot read is judged by the loader itself, with its own error
        return 0
    layers, heads, kv_heads, width = (
        info.layer_count,
        info.head_count,
        info.head_count_kv,
        info.embedding_length,
    )
    if not (layers and heads and width):
        return 0
    head_dim = width // heads
    return 2 * layers * (kv_heads or heads) * head_dim * 2 * context_tokens


def memory_fit_check(
    model: LocalModel, context_tokens: int, loaded: list[EngineInfo], *, sequences: int = 1
) -> FitVerdict:
    """Default until the advisor's check is injected: weights (file) x 1.2 for compute buffers,
    plus the KV cache of every sequence, against the memory available now (which already counts
    the models loaded)."""
    import psutil

    required = int(model.size_bytes * 1.2) + kv_cache_bytes(model, context_tokens * sequences)
    available = int(psutil.virtual_memory().available)
    fits = required <= available
    reason = (
        ""
        if fits
        else (
            f"{model.name} needs about {required / 1e9:.1f} GB of memory but only {available / 1e9:.1f} GB is available"
            + (f" with {len(loaded)} other model(s) loaded" if loaded else "")
        )
    )
    return FitVerdict(fits, required, available, reason)


def engine_identity(model: LocalModel) -> tuple[object, ...]:
    """What makes two names one engine: the same weights file with the same adapters (and scales).
    Every name that maps to a base without adapters shares its engine; base+A, base+B and the base
    alone are three."""
    with contextlib.suppress(OSError):
        return (str(model.path.resolve()), model.format, adapters_identity(model.adapters))
    return (str(model.path), model.format, adapters_identity(model.adapters))


def llamacpp_factory(model: LocalModel, settings: Settings) -> Engine:
    import psutil

    from bendi.engines.llamacpp.draft import DraftMismatchError
    from bendi.engines.llamacpp.engine import LlamaCppEngine
    from bendi.engines.llamacpp.model import ContextConfig
    from bendi.engines.llamacpp.speculate_policy import DRAFT_NEEDS_MODEL

    config = ContextConfig(
        context_tokens=settings.context_tokens,
        sequences=settings.parallel_sequences,
        batch_tokens=settings.batch_tokens,
        prefill_chunk_tokens=settings.prefill_chunk_tokens,
        prefill_step_s=settings.prefill_step_s,
        # Never more than a quarter of the memory free at load time: it is a cache, not a need.
        prompt_cache_mb=min(settings.prompt_cache_mb, int(psutil.virtual_memory().available / 4 / 2**20)),
        threads=settings.threads,
        gpu_layers=settings.gpu_layers if settings.gpu_layers >= 0 else 0,
    )
    # Checked again here, not only by the pool: a factory caller (replica sets' local engine) may
    # skip the pool, and llama.cpp must never be the one to find out.
    draft = draft_for(model, settings)
    mode = settings.speculative
    if mode == "draft" and draft is None:  # refused before the weights are loaded, not after
        raise UserInputError(DRAFT_NEEDS_MODEL)
    adapters = check_adapters(model)
    try:
        engine = LlamaCppEngine(
            model.name, model.path, config, adapters, draft.model.path if draft is not None else None
        )
    except DraftMismatchError as exc:
        if draft is None or draft.strict:
            raise
        # The server-wide draft is for its own family: this model is served without it.
        log.warning("%s is served without the draft model: %s", model.name, exc)
        mode = settings.speculative
        engine = LlamaCppEngine(model.name, model.path, config, adapters)
    engine.configure_speculation(mode, settings.speculative_tokens)
    return engine


@dataclass
class _Loaded:
    engine: Engine
    model: LocalModel
    keep_alive_s: float
    last_used_s: float


@dataclass(frozen=True)
class LoadedModel:
    info: EngineInfo
    path: str
    expires_in_s: float
    # LoRA adapters applied (engines/adapters.py CheckedAdapter.describe()): name, path, scale, rank
    adapters: list[dict[str, Any]] = field(default_factory=list)


class EnginePool:
    """The models this process serves, by canonical name. Loads happen in a worker thread, one at
    a time per model; a model that fails to load is recorded with its reason (`failures()`) while
    the others keep serving."""

    def __init__(
        self,
        settings: Settings,
        paths: DataPaths,
        *,
        fit_check: FitCheck | None = None,
        engine_factory: EngineFactory | None = None,
        fits: FitCheck | None = None,  # the same as fit_check (the advisor's name for it)
        server_factory: ServerFactory | None = None,
    ) -> None:
        self._settings = settings
        self._paths = paths
        self._fit_check: FitCheck = fit_check or fits or self._default_fit_check
        self._factory = engine_factory or llamacpp_factory
        self._server_factory = server_factory or start_server
        self._directories: dict[str, LocalModel] = {}  # HF-format directories given by path
        self._loaded: dict[str, _Loaded] = {}  # by the name each engine was loaded under
        self._load_lock = asyncio.Lock()
        self._failures: dict[str, str] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._upstreams: dict[str, list[UpstreamSpec]] = upstream_specs(settings)

    def _default_fit_check(
        self, model: LocalModel, context_tokens: int, loaded: list[EngineInfo]
    ) -> FitVerdict:
        return memory_fit_check(model, context_tokens, loaded, sequences=self._settings.parallel_sequences)

    def _fits(self, model: LocalModel, loaded: list[EngineInfo]) -> Verdict | None:
        if is_hf_model(model):
            return None  # judged by the engine server itself, which says so when it runs out of memory
        if model.adapters:  # llama.cpp copies adapter tensors into memory of their own
            model = replace(model, size_bytes=model.size_bytes + adapters_bytes(model.adapters))
        draft = None
        with contextlib.suppress(BendiError):  # a missing draft is reported when the model loads
            draft = draft_for(model, self._settings)
        if draft is not None:  # its weights and KV cache load beside the model's
            tokens = self._settings.context_tokens * self._settings.parallel_sequences
            extra = draft.model.size_bytes + kv_cache_bytes(draft.model, tokens)
            model = replace(model, size_bytes=model.size_bytes + extra)
        return self._fit_check(model, self._settings.context_tokens, loaded)

    # queries -----------------------------------------------------------------------------
    def default_model_name(self) -> str:
        """settings.default_model, else the largest installed model that fits, else the bundled one."""
        if self._settings.default_model:
            return self._settings.default_model
        candidates = sorted(installed_models(self._paths), key=lambda m: m.size_bytes, reverse=True)
        for model in candidates:
            verdict = self._fits(model, [])
            if model.source != "bundled" and (verdict is None or verdict.fits):
                return model.name
        return DEFAULT_BUNDLED

    def resolve(self, name_or_path: str) -> LocalModel:
        if name_or_path in self._upstreams:  # served by replicas (engines/replicas.py)
            path = Path("upstream", name_or_path)
            return LocalModel(name=name_or_path, path=path, size_bytes=0, source="upstream")
        candidate = Path(name_or_path).expanduser()
        if is_hf_model_dir(candidate):
            model = hf_directory_model(candidate)
            self._directories[model.name] = model
            return model
        if name_or_path in self._directories:
            return self._directories[name_or_path]
        entry = self._loaded.get(name_or_path)
        if entry is not None and entry.model.source == "file":
            # A file the operator loaded by path (`bendi serve --model PATH`) is listed under its file
            # name; clients ask for it by that name, which is no path from the server's directory.
            return entry.model
        return resolve_model(self._paths, name_or_path)

    def loaded(self) -> list[LoadedModel]:
        now = time.monotonic()
        return [
            LoadedModel(
                entry.engine.info,
                str(entry.model.path),
                FOREVER_S
                if entry.keep_alive_s < 0
                else max(0.0, entry.last_used_s + entry.keep_alive_s - now),
                adapters=[
                    a.describe()
                    for a in getattr(entry.engine, "adapters", ())
                    if isinstance(a, CheckedAdapter)
                ],
            )
            for entry in self._loaded.values()
        ]

    def upstream_models(self) -> list[str]:
        """Model names served by replicas (`bendi serve --upstream MODEL=URL`)."""
        return sorted(self._upstreams)

    def replicas(self) -> list[ReplicaStatus]:
        """Every replica of the replica sets started so far, for /metrics and the UI."""
        return [s for e in self._loaded.values() for s in getattr(e.engine, "statuses", list)()]

    def get_loaded(self, name: str) -> Engine | None:
        entry = self._loaded.get(name)
        return entry.engine if entry else None

    def failures(self) -> dict[str, str]:
        failed = dict(self._failures)
        for name, entry in self._loaded.items():
            reason = getattr(entry.engine, "failure", None)  # a server engine bendi gave up restarting
            if reason:
                failed[name] = reason
        return failed

    def stats(self) -> dict[str, EngineStats]:
        result = {}
        for name, entry in self._loaded.items():
            stats = getattr(entry.engine, "stats", None)
            if callable(stats):
                result[name] = stats()
        return result

    # loading -----------------------------------------------------------------------------
    async def acquire(
        self,
        name_or_path: str | None = None,
        *,
        keep_alive_s: float | None = None,
        engine: str | None = None,
    ) -> Engine:
        """The engine for this model, loading it on first use (llama.cpp in a worker thread; a
        Hugging Face-format model in a supervised engine server). `engine` overrides settings.engine
        for this load."""
        name = name_or_path or self.default_model_name()
        if name in self._upstreams:  # served by replicas (engines/replicas.py)
            return await self._replica_set(self.resolve(name))
        # engine_select: which installed form (GGUF / HF) and engine, per the advisor and the config.
        decision = select_engine(name, engine, self.resolve, self._settings, self._paths)
        model = decision.model
        kind = decision.kind
        keep = self._settings.keep_alive_s if keep_alive_s is None else keep_alive_s
        if kind != "llama.cpp" and keep_alive_s is None:
            keep = -1.0  # a server engine takes a minute to start: it stays up unless told otherwise
        entry = self._find(model)
        if entry is None:
            # One load at a time: the fit check must see the memory the previous load took.
            async with self._load_lock:
                entry = self._find(model)
                if entry is None:
                    await self._drop_stale(model.name)
                    entry = await self._load(model, keep, kind)
        entry.last_used_s = time.monotonic()
        if keep_alive_s is not None:
            entry.keep_alive_s = keep
        self._ensure_reaper()
        return entry.engine

    def _find(self, model: LocalModel) -> _Loaded | None:
        """The engine loaded under this name if it still has these weights and adapters; None when
        it must be loaded. A preset without adapters resolves to its base's name, so it shares the
        base's engine; a file path stays an engine of its own, as before."""
        entry = self._loaded.get(model.name)
        if entry is not None and engine_identity(entry.model) == engine_identity(model):
            return entry
        return None

    async def _drop_stale(self, name: str) -> None:
        """The name now means other weights or adapters (a preset made again with another ADAPTER, a
        re-tuned adapter file): unload the engine loaded under that name."""
        if name in self._loaded:
            await self.unload(name)

    async def _replica_set(self, model: LocalModel) -> Engine:
        from bendi.engines.replicas_build import build_replica_set, local_template

        entry = self._loaded.get(model.name)
        if entry is None:
            async with self._load_lock:  # one build: two would health-check and route apart
                entry = self._loaded.get(model.name)
                if entry is None:
                    local = self._local_model(model.name)

                    async def local_engine() -> Engine:
                        assert local is not None
                        return await asyncio.to_thread(self._factory, local, self._settings)

                    engine = await build_replica_set(
                        model.name, self._upstreams[model.name], self._settings,
                        local_template=local_template(local) if local else None,
                        local_engine=local_engine if local else None,
                    )  # fmt: skip
                    entry = _Loaded(engine, model, -1.0, time.monotonic())  # never unloaded when idle
                    self._loaded[model.name] = entry
        entry.last_used_s = time.monotonic()
        return entry.engine

    def _local_model(self, name: str) -> LocalModel | None:
        try:
            return resolve_model(self._paths, name)
        except BendiError:
            return None

    async def _load(self, model: LocalModel, keep_alive_s: float, kind: EngineKind = "llama.cpp") -> _Loaded:
        if len(self._resident()) >= self._settings.max_loaded_models:
            await self._evict_one_idle()
        verdict = self._fits(model, [e.engine.info for e in self._resident()])
        if verdict is not None and not verdict.fits and not self._settings.force_load:
            raise ModelTooLargeError(
                f"Not loading {model.name}: {verdict.reason or 'it will not fit in memory'} "
                f"(required {verdict.required_bytes / 1e9:.1f} GB, available {verdict.available_bytes / 1e9:.1f} GB). "
                "Unload other models, choose a smaller quantization (see `bendi plan`), or set BENDI_FORCE_LOAD=1."
            )
        try:
            if model.adapters and kind != "llama.cpp":
                raise AdapterError(
                    f"{model.name} has LoRA adapters, which bendi applies with llama.cpp only (not {kind}); "
                    "serve it with engine llama.cpp."
                )
            if kind == "llama.cpp":  # the factory checks the adapters against the base before llama.cpp
                engine = await asyncio.to_thread(self._factory, model, self._settings)
            else:
                engine = await self._server_factory(model, kind, self._settings, self._paths)
        except Exception as exc:
            reason = getattr(exc, "message", None) or str(exc)
            self._failures[model.name] = reason
            if isinstance(exc, EngineError | ModelTooLargeError | AdapterError):
                raise
            raise EngineError(f"Could not load {model.name}: {reason}") from exc
        self._failures.pop(model.name, None)
        entry = _Loaded(engine, model, keep_alive_s, time.monotonic())
        self._loaded[model.name] = entry
        return entry

    def _resident(self) -> list[_Loaded]:
        """Models loaded in this process (a replica set's engines run elsewhere)."""
        return [e for e in self._loaded.values() if e.model.source != "upstream"]

    def _busy(self, entry: _Loaded) -> bool:
        stats = getattr(entry.engine, "stats", None)
        if callable(stats):
            current: Any = stats()
            return bool(current.active_sequences or current.waiting_sequences)
        return False

    async def _evict_one_idle(self) -> None:
        idle = [(e.last_used_s, e.model.name) for e in self._resident() if not self._busy(e)]
        if not idle:
            raise OverloadedError(
                f"{len(self._loaded)} models are loaded and all are busy (limit BENDI_MAX_LOADED_MODELS="
                f"{self._settings.max_loaded_models}). Try again shortly.",
                retry_after_s=5.0,
            )
        await self.unload(min(idle)[1])

    async def unload(self, name: str) -> bool:
        entry = self._loaded.pop(name, None)
        if entry is None:
            return False
        await entry.engine.close()
        return True

    # keep-alive ------------------------------------------------------------------------
    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        while self._loaded:
            await asyncio.sleep(1.0)
            await self.unload_expired()

    async def unload_expired(self) -> list[str]:
        now = time.monotonic()
        expired = [
            name
            for name, e in self._loaded.items()
            if e.keep_alive_s >= 0 and now - e.last_used_s >= e.keep_alive_s and not self._busy(e)
        ]
        for name in expired:
            await self.unload(name)
        return expired

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reaper
        for name in list(self._loaded):
            await self.unload(name)
