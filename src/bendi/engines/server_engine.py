"""A Hugging Face-format model served by a supervised vLLM (or SGLang) process, behind the Engine protocol."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Literal

from bendi.core.errors import EngineError, OverloadedError, UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.engines.hf_model import HfModel, TokenCounter, local_token_counter, read_hf_model
from bendi.engines.launch import LaunchPlan, sglang_plan, vllm_plan
from bendi.engines.messages import (
    ChatMessage,
    Finished,
    GenerationEvent,
    GenerationRequest,
    RenderedPrompt,
)
from bendi.engines.protocol import EngineInfo
from bendi.engines.server_install import EngineInstall, engine_python, install_hint, probe_engine
from bendi.engines.stats import EngineStats
from bendi.engines.supervisor import EngineSupervisor
from bendi.engines.upstream import UpstreamEngine, UpstreamUnavailableError

ServerKind = Literal["vllm", "sglang"]


def extra_args(settings: Settings, name: str) -> list[str]:
    """`[models."NAME"] engine_args` from the config file (checked when settings load: nothing that
    would expose the engine or run model code gets this far)."""
    entry = settings.models.get(name)
    return list(entry.engine_args) if entry else []


def vllm_launch(
    install: EngineInstall, hf: HfModel, name: str, settings: Settings, paths: DataPaths, port: int
) -> LaunchPlan:
    """launch.py's vllm_plan, made runnable by bendi: the engine's python, loopback only, no code
    from the model directory, sized from bendi's settings; CPU builds run eager in bf16."""
    plan = vllm_plan(str(hf.path), name, port=port, context_tokens=settings.context_tokens, reasoning=False)
    # bendi renders chat templates and splits <think> itself (over /v1/completions), so vLLM's own
    # reasoning parser is not used; and a model's own Python code is never run.
    argv = [a for a in plan.argv if a != "--trust-remote-code"]
    argv[:2] = [install.python, "-m", "vllm.entrypoints.cli.main", "serve"]
    argv += ["--max-num-seqs", str(max(1, settings.parallel_sequences)), "--disable-uvicorn-access-log"]
    argv += ["--enable-prompt-tokens-details"]  # cached prompt tokens in usage, for /metrics
    cache = paths.cache / "vllm"
    env = {
        "HF_HUB_OFFLINE": "1",  # bendi's store fetches models; the engine never downloads
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_CACHE_ROOT": str(cache),
        "TMPDIR": str(cache / "tmp"),
    }
    if install.cpu:
        # Compiled graphs are rebuilt with g++ on every start (72-107 s vs 23 s on 2 cores); eager
        # decodes within 15% of them.
        argv += ["--dtype", "bfloat16", "--enforce-eager"]
        tokens = settings.context_tokens * max(1, settings.parallel_sequences)
        env["VLLM_CPU_KVCACHE_SPACE"] = os.environ.get("VLLM_CPU_KVCACHE_SPACE") or str(
            hf.kv_cache_gib(tokens)
        )
    (cache / "tmp").mkdir(parents=True, exist_ok=True)
    argv += extra_args(settings, name)  # last: an operator's value wins over bendi's defaults
    return dataclasses.replace(plan, argv=tuple(argv), env=tuple(env.items()))


def sglang_launch(
    install: EngineInstall, hf: HfModel, name: str, settings: Settings, paths: DataPaths, port: int
) -> LaunchPlan:
    """launch.py's sglang_plan with the engine's python, loopback only, no model code run."""
    plan = sglang_plan(str(hf.path), name, port=port, context_tokens=settings.context_tokens, reasoning=False)
    argv = [a for a in plan.argv if a != "--trust-remote-code"]
    argv[0] = install.python
    argv += ["--max-running-requests", str(max(1, settings.parallel_sequences))]
    argv += extra_args(settings, name)
    env = {"HF_HUB_OFFLINE": "1", "TMPDIR": str(paths.cache / "sglang" / "tmp")}
    (paths.cache / "sglang" / "tmp").mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(plan, argv=tuple(argv), env=tuple(env.items()))


class ServerEngine:
    """One model in an engine server that bendi supervises. bendi renders the chat template and
    splits reasoning itself, so both APIs behave as with llama.cpp; the server only turns text into
    tokens, on a private loopback port that clients never see."""

    def __init__(
        self,
        name: str,
        kind: ServerKind,
        hf: HfModel,
        supervisor: EngineSupervisor,
        settings: Settings,
    ) -> None:
        self._name, self._kind, self._hf = name, kind, hf
        self._supervisor = supervisor
        self._counter: TokenCounter | None = local_token_counter(hf.path)
        kv = hf.kv_bytes_per_token * settings.context_tokens * max(1, settings.parallel_sequences)
        self._info = EngineInfo(
            model_name=name,
            engine=kind,
            context_tokens=settings.context_tokens,
            architecture=hf.architecture,
            quantization=hf.quantization,
            file_bytes=hf.weights_bytes,
            memory_bytes=hf.weights_bytes + kv,
        )
        self._upstream = self._connect()
        self._active = 0
        self._prompt_tokens = self._cached_tokens = self._generated_tokens = 0

    def _connect(self) -> UpstreamEngine:
        return UpstreamEngine(
            self._supervisor.base_url,
            self._info,
            lambda messages, add: self.render_chat(messages, add_generation_prompt=add),
            served_model_name=self._name,
            dialect="vllm",
        )

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def supervisor(self) -> EngineSupervisor:
        return self._supervisor

    @property
    def failure(self) -> str | None:
        """Why the engine is down for good (bendi gave up restarting it), else None."""
        return self._supervisor.failure if self._supervisor.state == "failed" else None

    def stats(self) -> EngineStats:
        return EngineStats(
            active_sequences=self._active,
            waiting_sequences=0,
            prompt_tokens_total=self._prompt_tokens,
            prompt_tokens_cached=self._cached_tokens,
            generated_tokens_total=self._generated_tokens,
            restarts_total=self._supervisor.restarts_total,
        )

    def render_chat(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        return self._hf.template.render(messages, add_generation_prompt=add_generation_prompt)

    def count_tokens(self, text: str, *, parse_special: bool = True) -> int:
        if self._counter is not None:
            return self._counter(text)
        return self._upstream.count_tokens(text, parse_special=parse_special)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self._supervisor.check()
        if self._upstream.base_url != self._supervisor.base_url:  # restarted on another port
            old, self._upstream = self._upstream, self._connect()
            await old.close()
        self._active += 1
        try:
            async for event in self._upstream.generate(request):
                if isinstance(event, Finished):
                    self._prompt_tokens += event.usage.prompt_tokens
                    self._cached_tokens += event.usage.cached_prompt_tokens
                    self._generated_tokens += event.usage.completion_tokens
                yield event
        except UpstreamUnavailableError as exc:
            if not self._supervisor.crashed_now():
                raise
            if exc.before_output:
                raise OverloadedError(
                    f"The {self._kind} engine serving {self._name} stopped unexpectedly and bendi is "
                    "restarting it. Retry in a few seconds.",
                    retry_after_s=5.0,
                ) from exc
            raise EngineError(
                f"The {self._kind} engine serving {self._name} stopped during this answer; bendi is "
                "restarting it. Ask again in a few seconds."
            ) from exc
        finally:
            self._active -= 1

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise UserInputError(
            f"{self._name} is served by {self._kind} for chat only. For embeddings use a GGUF embedding "
            "model (bendi's llama.cpp engine), e.g. the knowledge bases' default multilingual-e5-small."
        )

    async def close(self) -> None:
        await self._supervisor.stop()
        await self._upstream.close()


async def start_server_engine(
    name: str, model_dir: Path, kind: ServerKind, settings: Settings, paths: DataPaths
) -> ServerEngine:
    """Start `kind` on the model directory and return the engine once it answers its health check."""
    hf = read_hf_model(model_dir)
    python = engine_python(kind, settings)
    install = await asyncio.to_thread(probe_engine, kind, python)
    if not install.installed:
        raise EngineError(
            f"Cannot serve {name} with {kind}: {kind} is {install.describe()}. {install_hint(kind)}"
        )
    launch = vllm_launch if kind == "vllm" else sglang_launch

    def plan_for_port(port: int) -> LaunchPlan:
        return launch(install, hf, name, settings, paths, port)

    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    supervisor = EngineSupervisor(
        plan_for_port,
        paths.logs / f"engine-{kind}-{safe}.log",
        what=f"the {kind} engine for {name}",
        start_timeout_s=settings.engine_start_timeout_s,
        restart_max=settings.engine_restart_max,
        hang_timeout_s=settings.engine_hang_timeout_s,
    )
    await supervisor.start()
    return ServerEngine(name, kind, hf, supervisor, settings)
