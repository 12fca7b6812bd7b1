"""ReplicaSet: one model served by several engines; least requests in flight, prefix affinity,
health checks, and failover of requests that have not produced output yet."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from bendi.core.errors import EngineError, OverloadedError
from bendi.engines.messages import ChatMessage, Finished, GenerationEvent, GenerationRequest, RenderedPrompt
from bendi.engines.protocol import Engine, EngineInfo
from bendi.engines.stats import EngineStats
from bendi.engines.upstream import UpstreamUnavailableError

log = logging.getLogger("bendi.replicas")
Renderer = Callable[[Sequence[ChatMessage], bool], RenderedPrompt]
AFFINITY_ENTRIES = 4096  # conversations remembered; the oldest is forgotten first
RAW_PREFIX_CHARS = 256  # a raw prompt's affinity key: its opening (a chat's is its first user turn)


@dataclass
class Replica:
    """One engine of the set. `connect` (re)creates a remote one after a health check finds it up;
    `probe` answers whether it is up (None: in this process, always up)."""

    label: str  # the base URL, or "local"
    engine: Engine | None
    probe: Callable[[], Awaitable[str | None]] | None = None  # None when up, else why not
    connect: Callable[[], Awaitable[Engine]] | None = None
    healthy: bool = True
    in_flight: int = 0
    requests_total: int = 0
    failures_total: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class ReplicaStatus:
    """A replica as /metrics and the UI show it."""

    model: str
    url: str
    healthy: bool
    in_flight: int
    requests_total: int
    failures_total: int
    last_error: str


class ReplicaSet:
    """An Engine over replicas of one model. A new conversation goes to the replica with the fewest
    requests in flight (ties in turn); its next turns follow it there, where its prefix is cached,
    unless that replica has more than `affinity_margin` requests over the least loaded one."""

    def __init__(
        self,
        info: EngineInfo,
        replicas: Sequence[Replica],
        renderer: Renderer,
        *,
        health_interval_s: float = 2.0,
        affinity_margin: int = 2,
    ) -> None:
        self._info = info
        self.replicas = list(replicas)
        self._renderer = renderer
        self._interval_s = health_interval_s
        self._margin = affinity_margin
        self._affinity: OrderedDict[str, Replica] = OrderedDict()
        self._pending_keys: OrderedDict[str, str] = OrderedDict()  # rendered prompt -> its chat's key
        self._turn = 0
        self._watcher: asyncio.Task[None] | None = None
        self._prompt_tokens = self._cached_tokens = self._generated_tokens = 0
        self.on_close: list[Callable[[], Awaitable[None]]] = []  # e.g. the health checks' HTTP clients

    @property
    def info(self) -> EngineInfo:
        return self._info

    # status ---------------------------------------------------------------------------------
    def statuses(self) -> list[ReplicaStatus]:
        return [
            ReplicaStatus(self._info.model_name, r.label, r.healthy and r.engine is not None, r.in_flight,
                          r.requests_total, r.failures_total, r.last_error)
            for r in self.replicas
        ]  # fmt: skip

    def stats(self) -> EngineStats:
        return EngineStats(
            active_sequences=sum(r.in_flight for r in self.replicas),
            waiting_sequences=0,
            prompt_tokens_total=self._prompt_tokens,
            prompt_tokens_cached=self._cached_tokens,
            generated_tokens_total=self._generated_tokens,
        )

    @property
    def failure(self) -> str | None:
        """Why no replica can serve (all are down), else None."""
        if any(r.healthy and r.engine is not None for r in self.replicas):
            return None
        reasons = "; ".join(f"{r.label}: {r.last_error or 'down'}" for r in self.replicas)
        return f"every replica of {self._info.model_name} is down ({reasons})"

    # health ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await asyncio.gather(*(self.check(r) for r in self.replicas if r.probe is not None))

    async def check(self, replica: Replica) -> None:
        """One health check: down replicas come back on success, up ones go out on failure."""
        assert replica.probe is not None
        problem = await replica.probe()
        if problem is None and replica.engine is None and replica.connect is not None:
            try:
                replica.engine = await replica.connect()
            except Exception as exc:  # up but not (yet) serving this model: stays out, with the reason
                problem = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        if problem is None and not replica.healthy:
            replica.healthy, replica.last_error = True, ""
            log.info(
                "replica back in service", extra={"model": self._info.model_name, "replica": replica.label}
            )
        elif problem is not None:
            self.take_out(replica, problem)

    def take_out(self, replica: Replica, reason: str) -> None:
        replica.last_error = reason[:300]
        if replica.healthy:
            replica.healthy = False
            log.warning("replica taken out of service", extra={
                "model": self._info.model_name, "replica": replica.label, "reason": replica.last_error})  # fmt: skip

    # routing --------------------------------------------------------------------------------
    def render_chat(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        rendered = self._renderer(messages, add_generation_prompt)
        # A conversation is known by its messages up to its first user turn, which later turns repeat.
        first_user = next((i for i, m in enumerate(messages) if m.role == "user"), len(messages) - 1)
        opening = "\x1e".join(f"{m.role}\x1f{m.content}" for m in messages[: first_user + 1])
        self._pending_keys[rendered.text] = _digest(opening)
        while len(self._pending_keys) > AFFINITY_ENTRIES:
            self._pending_keys.popitem(last=False)
        return rendered

    def _key(self, prompt: str) -> str:
        return self._pending_keys.pop(prompt, None) or _digest(prompt[:RAW_PREFIX_CHARS])

    def choose(self, key: str, tried: Sequence[Replica] = ()) -> Replica | None:
        """The replica for the next request of conversation `key`, None when none is left to try."""
        candidates = [r for r in self.replicas if r.engine is not None and r not in tried and r.healthy]
        if not candidates:  # all out: try the rest anyway, a check may not have seen a recovery yet
            candidates = [r for r in self.replicas if r.engine is not None and r not in tried]
        if not candidates:
            return None
        least = min(r.in_flight for r in candidates)
        preferred = self._affinity.get(key)
        if preferred in candidates and preferred is not None and preferred.in_flight <= least + self._margin:
            return preferred
        ties = [r for r in candidates if r.in_flight == least]
        self._turn += 1
        return ties[self._turn % len(ties)]

    def _remember(self, key: str, replica: Replica) -> None:
        self._affinity[key] = replica
        self._affinity.move_to_end(key)
        while len(self._affinity) > AFFINITY_ENTRIES:
            self._affinity.popitem(last=False)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        key = self._key(request.prompt)
        tried: list[Replica] = []
        problems: list[str] = []
        while (replica := self.choose(key, tried)) is not None:
            tried.append(replica)
            assert replica.engine is not None
            replica.in_flight += 1
            replica.requests_total += 1
            stream = replica.engine.generate(request)
            answered = False
            try:
                async for event in stream:
                    if not answered:
                        answered = True
                        self._remember(key, replica)
                    if isinstance(event, Finished):
                        self._count(event)
                    yield event
                return
            except UpstreamUnavailableError as exc:
                replica.failures_total += 1
                self.take_out(replica, exc.message)  # at once: the next request must not wait for a check
                if answered or not exc.before_output:
                    raise EngineError(
                        f"The replica of {self._info.model_name} at {replica.label} stopped during this "
                        "answer; it is out of service and new requests go to the other replicas. Ask again."
                    ) from exc
                problems.append(f"{replica.label}: {exc.message}")
            except (EngineError, OverloadedError) as exc:
                replica.failures_total += 1
                if answered:
                    raise
                # Refused before any output (busy, restarting): another replica may take it.
                problems.append(f"{replica.label}: {exc.message}")
            finally:
                replica.in_flight -= 1
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
        raise OverloadedError(
            f"No replica of {self._info.model_name} could take the request ({'; '.join(problems) or 'all are down'}).",
            retry_after_s=max(1.0, self._interval_s),
        )

    def _count(self, finished: Finished) -> None:
        self._prompt_tokens += finished.usage.prompt_tokens
        self._cached_tokens += finished.usage.cached_prompt_tokens
        self._generated_tokens += finished.usage.completion_tokens

    def _any(self) -> Engine:
        replica = self.choose("")
        if replica is None or replica.engine is None:
            raise OverloadedError(self.failure or f"No replica of {self._info.model_name} is up.", 5.0)
        return replica.engine

    def count_tokens(self, text: str, *, parse_special: bool = True) -> int:
        return self._any().count_tokens(text, parse_special=parse_special)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._any().embed(texts)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
        for replica in self.replicas:
            if replica.engine is not None:
                await replica.engine.close()
        for closer in self.on_close:
            await closer()


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=12).hexdigest()
