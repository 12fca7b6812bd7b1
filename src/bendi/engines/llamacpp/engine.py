"""LlamaCppEngine: the Engine protocol over an in-process llama.cpp model and its scheduler."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from bendi.core.errors import ContextOverflowError, EngineError, UserInputError
from bendi.engines.adapters import CheckedAdapter
from bendi.engines.chat_template import CHATML_TEMPLATE, ChatTemplate
from bendi.engines.llamacpp.draft import DraftModel
from bendi.engines.llamacpp.mailbox import open_mailbox
from bendi.engines.llamacpp.model import ContextConfig, LlamaModel
from bendi.engines.llamacpp.scheduler import Scheduler
from bendi.engines.llamacpp.sequence import Sequence as ActiveSequence
from bendi.engines.llamacpp.speculate_policy import DRAFT_NEEDS_MODEL, SpeculationPolicy, SpeculativeMode
from bendi.engines.messages import ChatMessage, Finished, GenerationEvent, GenerationRequest, RenderedPrompt
from bendi.engines.protocol import EngineInfo
from bendi.engines.stats import EngineStats

EMBED_SEQUENCES = 16  # texts packed into one embedding decode


class LlamaCppEngine:
    """One model loaded in this process. Generation runs on the scheduler thread; this object only
    moves requests and events between it and the event loop, so /health never waits on a token."""

    def __init__(
        self,
        name: str,
        path: Path,
        config: ContextConfig,
        adapters: Sequence[CheckedAdapter] = (),
        draft_path: Path | None = None,
    ) -> None:
        self._model = LlamaModel(path, config, adapters)  # LoRA adapters: checked by the pool first
        try:  # a draft model for speculative=draft: same tokenizer, checked here
            self._draft = DraftModel(draft_path, config, self._model) if draft_path is not None else None
        except BaseException:
            self._model.close()
            raise
        self.draft_name = draft_path.name if draft_path is not None else None
        self.adapters = tuple(adapters)
        self._config = config
        meta = self._model.metadata
        self._template = ChatTemplate(
            meta.get("tokenizer.chat_template") or CHATML_TEMPLATE,
            bos_token=self._model.token_text(self._model.bos) if self._model.bos >= 0 else "",
            eos_token=self._model.token_text(self._model.eos) if self._model.eos >= 0 else "",
        )
        self._scheduler = Scheduler(
            self._model,
            sequences=config.sequences,
            batch_tokens=config.batch_tokens,
            prefill_chunk_tokens=config.prefill_chunk_tokens,
            prefill_step_s=config.prefill_step_s,
            prompt_cache_mb=config.prompt_cache_mb,
            draft=self._draft,
        )
        self._embedder: LlamaModel | None = None
        self._embed_lock = asyncio.Lock()
        self._closed = False
        arch = meta.get("general.architecture", "")
        trained_ctx = meta.get(f"{arch}.context_length", "")
        self._info = EngineInfo(
            model_name=name,
            engine="llama.cpp",
            context_tokens=config.context_tokens,
            architecture=arch,
            parameters=self._model.parameters,
            quantization=self._model.quantization,
            file_bytes=path.stat().st_size,
            memory_bytes=self._model.size_bytes
            + self._model.kv_cache_bytes
            + self._model.adapter_bytes
            + (self._draft.memory_bytes if self._draft is not None else 0),
            supports_embeddings=True,
            embeddings_are_fallback=not self._model.has_trained_pooling,
        )
        self.trained_context_tokens = int(trained_ctx) if trained_ctx.isdigit() else None

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._model.metadata)

    @property
    def chat_template_source(self) -> str:
        return self._template.source

    def stats(self) -> EngineStats:
        return self._scheduler.stats()

    def configure_speculation(self, mode: SpeculativeMode, max_tokens: int) -> None:
        """Settings `speculative` and `speculative_tokens` (docs/engine.md, Speculative decoding)."""
        if mode == "draft" and self._draft is None:
            raise UserInputError(DRAFT_NEEDS_MODEL)
        self._scheduler.set_speculation(SpeculationPolicy(mode=mode, max_tokens=max_tokens))

    def render_chat(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        return self._template.render(messages, add_generation_prompt=add_generation_prompt)

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]:
        return self._model.tokenize(text, parse_special=parse_special)

    def count_tokens(self, text: str, *, parse_special: bool = True) -> int:
        return len(self._model.tokenize(text, parse_special=parse_special))

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        tokens = self._model.tokenize(request.prompt, parse_special=request.parse_special)
        context = self._config.context_tokens
        if len(tokens) >= context:
            raise ContextOverflowError(len(tokens), context, request.params.max_tokens)
        if not tokens:  # generation needs one token to start from
            if self._model.bos < 0:
                raise UserInputError("The prompt is empty and this model has no start token; send some text.")
            tokens = [self._model.bos]
        room = context - len(tokens)
        wanted = request.params.max_tokens
        max_new = room if wanted is None else max(0, min(wanted, room))
        loop = asyncio.get_running_loop()
        open_mailbox(loop)
        queue: asyncio.Queue[GenerationEvent | BaseException] = asyncio.Queue()
        seq = ActiveSequence(request.request_id, tokens, request.params, max_new, loop, queue,
                             client_id=request.client_id)  # fmt: skip
        if max_new == 0:
            seq.finish("length")
        else:
            try:
                self._scheduler.submit(seq)
            except RuntimeError as exc:  # unloaded between acquire() and now
                raise EngineError(
                    f"{self._info.model_name} was just unloaded; send the request again to reload it."
                ) from exc
        finished = False
        try:
            while True:
                event = await queue.get()
                if isinstance(event, BaseException):
                    raise EngineError(f"The engine failed while generating: {event}") from event
                yield event
                if isinstance(event, Finished):
                    finished = True
                    return
        finally:
            if not finished:  # the consumer went away (client disconnected, task cancelled)
                self._scheduler.cancel(seq)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        async with self._embed_lock:
            if self._closed:  # unloaded (keep_alive 0) while this request waited: never touch freed memory
                raise EngineError("The model was unloaded while this request waited; send it again.")
            return await asyncio.to_thread(self._embed_sync, list(texts))

    def _embed_sync(self, texts: list[str]) -> list[list[float]]:
        import llama_cpp

        if self._embedder is None:
            window = min(self._config.context_tokens, self.trained_context_tokens or 2048, 2048)
            config = ContextConfig(
                context_tokens=window,
                sequences=EMBED_SEQUENCES,
                batch_tokens=window,
                threads=self._config.threads,
                gpu_layers=self._config.gpu_layers,
                embeddings=True,
                unified_kv=True,  # packed texts share one pool of `window` cells
            )
            self._embedder = LlamaModel(self._model.path, config)
        model = self._embedder
        limit = model.config.context_tokens
        dims = llama_cpp.llama_model_n_embd(model.model)
        token_lists = [model.tokenize(text)[:limit] or [model.bos] for text in texts]
        vectors: list[list[float]] = []
        batch = llama_cpp.llama_batch_init(limit, 0, 1)
        try:
            start = 0
            while start < len(token_lists):
                # Pack as many texts as fit into one decode, one sequence id each.
                end, used = start, 0
                while end < len(token_lists) and end - start < EMBED_SEQUENCES:
                    if used + len(token_lists[end]) > limit and end > start:
                        break
                    for pos, token in enumerate(token_lists[end]):
                        i = used + pos
                        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, 1
                        batch.seq_id[i][0] = end - start
                    used += len(token_lists[end])
                    end += 1
                batch.n_tokens = used
                llama_cpp.llama_memory_clear(model.memory, True)
                if llama_cpp.llama_decode(model.ctx, batch) != 0:
                    raise EngineError("llama.cpp failed to compute an embedding")
                for seq in range(end - start):
                    vector = llama_cpp.llama_get_embeddings_seq(model.ctx, seq)[:dims]
                    norm = sum(v * v for v in vector) ** 0.5 or 1.0
                    vectors.append([v / norm for v in vector])
                start = end
        finally:
            llama_cpp.llama_batch_free(batch)
        return vectors

    async def close(self) -> None:
        # An embedding running on a worker thread holds the lock: wait for it before freeing the model.
        async with self._embed_lock:
            self._closed = True
        await asyncio.to_thread(self._scheduler.shutdown)
        with contextlib.suppress(Exception):
            self._model.close()
            if self._draft is not None:
                self._draft.close()
            if self._embedder is not None:
                self._embedder.close()
