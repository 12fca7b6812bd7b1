"""A loaded llama.cpp model and context: load, metadata, tokenize, detokenize (low-level bindings)."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bendi.core.errors import AdapterError, EngineError, InvalidModelFileError
from bendi.engines.adapters import CheckedAdapter

_BACKEND_LOCK = threading.Lock()
_BACKEND_READY = False
_SILENT_LOG: Any = None  # the ctypes callback must outlive every call into llama.cpp

# general.file_type (llama_ftype) -> the quantization name people use.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
}  # fmt: skip


def init_backend() -> None:
    """Initialise llama.cpp once per process and silence its logging (it would garble terminal chat)."""
    global _BACKEND_READY, _SILENT_LOG
    with _BACKEND_LOCK:
        if _BACKEND_READY:
            return
        import llama_cpp

        llama_cpp.llama_backend_init()

        @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
        def _silent(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            return None

        _SILENT_LOG = _silent
        llama_cpp.llama_log_set(_SILENT_LOG, ctypes.c_void_p(0))
        _BACKEND_READY = True


@dataclass(frozen=True)
class ContextConfig:
    context_tokens: int  # per sequence
    sequences: int  # parallel sequences sharing the unified KV cache
    batch_tokens: int
    threads: int
    gpu_layers: int = 0
    embeddings: bool = False
    # One KV pool shared by all sequences (prefixes copy across slots) vs one stream per sequence
    # (a sequence's cells never move, so its numbers do not depend on what else is running).
    unified_kv: bool = False
    # Prompt tokens one step may add while other streams are generating: bounds their stall.
    prefill_chunk_tokens: int = 128  # core/settings.py says why
    # ... or as many more as the engine reads in about this many seconds (0: always the above).
    prefill_step_s: float = 1.0
    # RAM for the KV of prefixes evicted from slots (restored for a later prompt that shares them).
    prompt_cache_mb: int = 0


class LlamaModel:
    """Owns the llama_model and one llama_context. Not thread-safe: one scheduler thread drives it."""

    def __init__(self, path: Path, config: ContextConfig, adapters: Sequence[CheckedAdapter] = ()) -> None:
        import llama_cpp

        init_backend()
        self._lib = llama_cpp
        self.path = path
        self.config = config
        self.adapters = tuple(adapters)
        self._adapter_handles: list[Any] = []
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = max(0, config.gpu_layers) if config.gpu_layers >= 0 else 999
        mparams.use_mmap = True
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise InvalidModelFileError(
                f"llama.cpp could not load {path}. The file may be damaged, incomplete, or of an architecture "
                "this llama.cpp does not know; re-download it or update bendi."
            )
        self.model = model
        # Adapters go on the model before the context exists: llama.cpp sizes the context's compute
        # graph from the adapters registered on its model.
        self._load_adapters()
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.metadata = self._read_metadata()
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = config.context_tokens * (1 if config.embeddings else config.sequences)
        cparams.n_batch = config.batch_tokens
        cparams.n_ubatch = config.batch_tokens
        cparams.n_seq_max = config.sequences
        cparams.n_threads = config.threads
        cparams.n_threads_batch = config.threads
        cparams.kv_unified = config.unified_kv
        cparams.no_perf = True
        if config.embeddings:
            cparams.embeddings = True
            # An embedding model pools as it was trained to (CLS, mean, last); a chat model's
            # fallback embedding is the mean of its hidden states.
            cparams.pooling_type = (
                llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED
                if self.has_trained_pooling
                else llama_cpp.LLAMA_POOLING_TYPE_MEAN
            )
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            self.close()
            raise EngineError(
                f"llama.cpp could not create a context of {cparams.n_ctx} tokens for {path.name}: "
                "probably not enough memory. Try a smaller context (--ctx) or fewer parallel sequences."
            )
        self.ctx = ctx
        self._set_adapters()
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.bos = llama_cpp.llama_vocab_bos(self.vocab)
        self.eos = llama_cpp.llama_vocab_eos(self.vocab)
        self._piece_buf = ctypes.create_string_buffer(256)
        self._eog: tuple[int, ...] | None = None
        self._pieces: dict[int, bytes] = {}

    # LoRA adapters -----------------------------------------------------------------------------
    def _load_adapters(self) -> None:
        """Load each (already checked, engines/adapters.py) adapter; on any failure free what was
        loaded, and the model, so a refused adapter leaks nothing."""
        lib = self._lib
        for adapter in self.adapters:
            handle = lib.llama_adapter_lora_init(self.model, str(adapter.path).encode())
            if not handle:
                self.close()
                raise AdapterError(
                    f"llama.cpp refused the adapter {adapter.path.name} for {self.path.name} (its checks passed "
                    "bendi's: the file may be damaged, or use a tensor type this llama.cpp cannot read)."
                )
            self._adapter_handles.append(handle)

    def _set_adapters(self) -> None:
        if not self._adapter_handles:
            return
        lib, n = self._lib, len(self._adapter_handles)
        handles = (lib.llama_adapter_lora_p_ctypes * n)(*self._adapter_handles)
        scales = (ctypes.c_float * n)(*(a.scale for a in self.adapters))
        if lib.llama_set_adapters_lora(self.ctx, handles, n, scales) != 0:
            self.close()
            raise AdapterError(f"llama.cpp could not apply the adapters of {self.path.name} to its context.")

    @property
    def adapter_bytes(self) -> int:
        return sum(a.size_bytes for a in self.adapters)

    # metadata --------------------------------------------------------------------------------
    def _read_metadata(self) -> dict[str, str]:
        lib, out = self._lib, {}
        buf = ctypes.create_string_buffer(1 << 16)
        for i in range(lib.llama_model_meta_count(self.model)):
            n = lib.llama_model_meta_key_by_index(self.model, i, buf, len(buf))
            if n < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            n = lib.llama_model_meta_val_str_by_index(self.model, i, buf, len(buf))
            if n < 0:
                continue
            if n >= len(buf):  # long values (chat templates): ask again with room for all of it
                big = ctypes.create_string_buffer(n + 1)
                lib.llama_model_meta_val_str_by_index(self.model, i, big, len(big))
                out[key] = big.value.decode("utf-8", "replace")
            else:
                out[key] = buf.value.decode("utf-8", "replace")
        return out

    @property
    def has_trained_pooling(self) -> bool:
        """True for embedding models (their GGUF says how to pool); chat models have no pooling."""
        arch = self.metadata.get("general.architecture", "")
        return (
            bool(self.metadata.get(f"{arch}.pooling_type", ""))
            or self.metadata.get("general.type") == "embedding"
        )

    @property
    def parameters(self) -> int:
        return int(self._lib.llama_model_n_params(self.model))

    @property
    def size_bytes(self) -> int:
        return int(self._lib.llama_model_size(self.model))

    @property
    def kv_cache_bytes(self) -> int:
        """f16 K and V over all layers for every cell of this context (what the context reserves)."""
        lib, model = self._lib, self.model
        heads = max(1, lib.llama_model_n_head(model))
        head_dim = lib.llama_model_n_embd(model) // heads
        per_token = 2 * lib.llama_model_n_layer(model) * lib.llama_model_n_head_kv(model) * head_dim * 2
        return int(per_token * lib.llama_n_ctx(self.ctx))

    @property
    def quantization(self) -> str:
        raw = self.metadata.get("general.file_type", "")
        return FILE_TYPES.get(int(raw), raw) if raw.isdigit() else raw

    def token_text(self, token: int) -> str:
        return self.piece(token, special=True).decode("utf-8", "replace")

    # tokens ------------------------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (self._lib.llama_token * capacity)()
        n = self._lib.llama_tokenize(
            self.vocab, data, len(data), tokens, capacity, add_special, parse_special
        )
        if n < 0:  # capacity too small (cannot happen with bytes+8, but be exact about it)
            capacity = -n
            tokens = (self._lib.llama_token * capacity)()
            n = self._lib.llama_tokenize(
                self.vocab, data, len(data), tokens, capacity, add_special, parse_special
            )
        result = list(tokens[:n])
        # Templates often spell out the BOS token; llama.cpp then adds another. One is right.
        if len(result) >= 2 and result[0] == self.bos and result[1] == self.bos:
            result.pop(0)
        return result

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token (possibly part of a UTF-8 character); memoised, it runs per token."""
        if not special:
            cached = self._pieces.get(token)
            if cached is None:
                cached = self._pieces[token] = self._piece_uncached(token, special=False)
            return cached
        return self._piece_uncached(token, special=True)

    def _piece_uncached(self, token: int, *, special: bool) -> bytes:
        n = self._lib.llama_token_to_piece(
            self.vocab, token, self._piece_buf, len(self._piece_buf), 0, special
        )
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
            return buf.raw[:n]
        return self._piece_buf.raw[:n]

    @property
    def end_of_generation_tokens(self) -> tuple[int, ...]:
        """Every token that ends a turn (EOS, EOT, <|im_end|>, ...): one scan of the vocabulary."""
        if self._eog is None:
            is_eog, vocab = self._lib.llama_vocab_is_eog, self.vocab
            self._eog = tuple(t for t in range(self.n_vocab) if is_eog(vocab, t))
        return self._eog

    def is_end_of_generation(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self.vocab, token))

    def close(self) -> None:
        lib = self._lib
        if getattr(self, "ctx", None):
            lib.llama_free(self.ctx)
            self.ctx = None
        # After the context that used them, before the model that registers them.
        for handle in getattr(self, "_adapter_handles", ()):
            lib.llama_adapter_lora_free(handle)
        self._adapter_handles = []
        if getattr(self, "model", None):
            lib.llama_model_free(self.model)
            self.model = None
