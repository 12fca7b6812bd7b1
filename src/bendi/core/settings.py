"""Settings: defaults, then an optional TOML file, then BENDI_* environment variables (env wins)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from bendi.core.engine_args import check_engine_args
from bendi.core.errors import UserInputError

DEFAULT_PORT = 11435  # next to Ollama's 11434, so both can run side by side
ENV_PREFIX = "BENDI_"


def physical_cores() -> int:
    """Physical cores, the thread count llama.cpp runs best with (hyper-threads only add contention)."""
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except Exception:  # psutil missing or unable to read /proc: fall back to logical count
        pass
    return max(1, os.cpu_count() or 1)


class ModelSettings(BaseModel):
    """`[models."NAME"]` in config.toml: how one model is served (docs/engines.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    engine: Literal["auto", "llama.cpp", "vllm", "sglang"] | None = None  # None: settings.engine
    # A small model of the same tokenizer that proposes tokens for this one (speculative decoding);
    # None: settings.draft_model. Named here, a draft of another tokenizer is an error.
    draft_model: str | None = None
    # Added to the vLLM / SGLang command line; `vllm_args` and `sglang_args` are accepted spellings.
    engine_args: tuple[str, ...] = Field(
        default=(), validation_alias=AliasChoices("engine_args", "vllm_args", "sglang_args")
    )

    @field_validator("engine_args")
    @classmethod
    def _safe_args(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_engine_args(value)


class Settings(BaseModel):
    """Every tunable of bendi. Field `foo_bar` is set by env `BENDI_FOO_BAR` or TOML key `foo_bar`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".bendi")

    # gateway
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = None  # when set, every API call needs "Authorization: Bearer <key>"
    reasoning_field: Literal["reasoning_content", "reasoning"] = "reasoning_content"
    cors_origins: tuple[str, ...] = ()
    max_request_bytes: int = 8 * 1024 * 1024
    max_upload_bytes: int = 512 * 1024 * 1024

    # organization mode (docs/security.md)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    server_names: tuple[str, ...] = ()  # Host names besides localhost, IP literals and this machine's name
    session_idle_minutes: int = 480  # a web session ends after this long without a request
    session_max_hours: int = 24 * 7  # and after this long whatever happens
    min_password_chars: int = 10
    admin_reads_conversations: bool = False
    quota_requests_per_minute: int = 0  # per user and per key, unless set on the user or key; 0: none
    quota_tokens_per_day: int = 0
    audit_record_text: bool = False  # keep prompt and answer text in the audit log
    # Successful GETs (lists, the UI's polling) are not audited unless this is on; every change, every
    # generation or search, every refusal and every administrator action always is.
    audit_reads: bool = False
    audit_retention_days: int = 365
    ldap_url: str | None = None  # e.g. ldap://dc.example.org:389 (ldaps:// for TLS)
    ldap_user_dn: str | None = None  # template, e.g. uid={username},ou=people,dc=example,dc=org
    ldap_bind_dn: str | None = None  # service account for search-then-bind (with ldap_user_filter)
    ldap_bind_password: str | None = None
    ldap_search_base: str | None = None
    ldap_user_filter: str = "(|(uid={username})(sAMAccountName={username}))"
    ldap_group_base: str | None = None
    ldap_group_filter: str = "(|(member={dn})(uniqueMember={dn})(memberUid={username}))"
    ldap_group_departments: tuple[str, ...] = ()  # "GROUP_CN_OR_DN=部门名", repeated
    ldap_admin_groups: tuple[str, ...] = ()  # groups whose members are administrators
    ldap_kb_editor_groups: tuple[str, ...] = ()
    ldap_timeout_s: float = 5.0

    # engines beyond llama.cpp (docs/engines.md): vLLM / SGLang as supervised processes, replicas
    engine: Literal["auto", "llama.cpp", "vllm", "sglang"] = "auto"
    vllm_python: str | None = None  # interpreter with vLLM installed; None: bendi's own
    sglang_python: str | None = None
    engine_start_timeout_s: float = 900.0  # a server engine must answer its health check by then
    engine_restart_max: int = 5  # restarts of a crashed engine (with backoff) before it is marked failed
    # An engine alive but not answering its health check this long is killed and restarted; 0: never.
    engine_hang_timeout_s: float = 60.0
    models: dict[str, ModelSettings] = Field(default_factory=dict)  # [models."NAME"] tables
    upstreams: tuple[str, ...] = ()  # MODEL=URL replicas (other bendi, vLLM, SGLang, llama-server)
    upstreams_file: Path | None = None  # TOML [[replica]] tables: model, url, api_key, model_id
    upstream_health_interval_s: float = 2.0  # how often each replica's /health is checked
    ray_command: str = "ray"

    # engine
    default_model: str | None = None
    threads: int = Field(default_factory=physical_cores)
    context_tokens: int = 4096
    batch_tokens: int = 512
    # Prompt tokens one decode step adds at least while other streams generate. Above 64 on purpose:
    # llama.cpp's CPU flash attention runs 64+ queries of one sequence as tiles, fewer row by row,
    # which costs ~2 us per query-key pair deep in a long prompt. A 2.6k-token prompt beside 7
    # streams: 64 took 2.2x its idle time, 128 1.2x, with no longer pauses for the 7 (docs/engine.md).
    prefill_chunk_tokens: int = 128
    # ... or, when the engine reads prompts faster, as many as it reads in about this many seconds
    # (multiples of 64; 0: always prefill_chunk_tokens). Each step beside running streams costs
    # them a pass over the weights, so fewer, larger steps bring a long prompt's first token sooner
    # (Gemma 3 270M, 2.5k tokens beside 7 streams: 5.6 -> 4.3 s) and the streams' later tokens
    # too. The streams ride a prompt step only once their last token is this old, so they pause
    # about two steps.
    prefill_step_s: float = Field(default=1.0, ge=0.0, le=30.0)
    # RAM for prefixes evicted from busy slots (a conversation's next turn after its slot was
    # reused restores its KV instead of recomputing the history); 0 turns it off.
    prompt_cache_mb: int = 512
    gpu_layers: int = -1  # -1: let the planner decide; 0: CPU only
    parallel_sequences: int = 8
    keep_alive_s: float = 300.0
    max_loaded_models: int = 3
    force_load: bool = False  # load even when the advisor says it will not fit
    # Speculative decoding (docs/engine.md): lookup proposes continuations found in the prompt (or a
    # draft model proposes), verified in the same decode step; auto does so only while it measures
    # faster, so it is the default: answers are exactly plain decoding's (llama.cpp patches 0002-0003).
    speculative: Literal["off", "lookup", "draft", "auto"] = "auto"
    # Longest proposal per sequence and step: verification batches stay within the 63 queries per
    # sequence of the patched attention's split path (patch 0003), with room to spare.
    speculative_tokens: int = Field(default=8, ge=0, le=31)
    # Draft model for every llama.cpp model of its tokenizer (`bendi serve --draft`): auto and draft
    # use it. A model of another tokenizer is served without it (a warning).
    draft_model: str | None = None

    # admission control
    max_queue: int = 32
    max_queue_wait_s: float = 30.0
    request_timeout_s: float = 600.0
    stalled_reader_timeout_s: float = 30.0
    per_client_max_concurrent: int = 0  # 0: no per-client quota
    shutdown_grace_s: float = 10.0
    log_level: str = "info"  # server logs: JSON lines on stderr; prompts and keys never logged
    log_format: Literal["json", "text"] = "json"

    # store
    hf_endpoint: str = "https://huggingface.co"
    modelscope_endpoint: str = "https://www.modelscope.cn"
    mirrors: tuple[str, ...] = ()
    source_order: tuple[str, ...] = ("huggingface", "modelscope", "mirror")
    allowed_hosts: tuple[str, ...] = ()  # extra hosts beyond the configured endpoints and known CDNs
    download_connections: int = 4
    # A download starts on one connection and is split over download_connections only when that one
    # carries less than this after a short probe (a per-connection cap, as hub CDNs have). A fast
    # LAN mirror stays on one connection, which is quicker there. inf: split from the start; 0: never.
    download_split_below_mb_s: float = 50.0

    # knowledge
    embedding_model: str = "multilingual-e5-small"
    rerank: bool = False
    # A cross-encoder reranker GGUF (bge-reranker family) for knowledge-base search; "" = none.
    kb_reranker: str = ""
    # Let the served model restate a question in the documents' terms before retrieval (only models
    # of >= 7B parameters do; knowledge/rewrite.py). Off: it costs a model call per question.
    kb_query_rewrite: bool = False
    # Below this best dense similarity a question is answered "I don't know" without calling the
    # model; None: the embedder's measured default (knowledge/answer.py).
    kb_min_similarity: float | None = None
    # OCR of scanned PDFs, images and pictures in DOCX (rapidocr, offline, CPU); the cores one page
    # uses (pages are read one at a time per process, so this bounds what a big scan takes).
    kb_ocr: bool = True
    kb_ocr_threads: int = 2
    # Every document is parsed in a worker process (knowledge/parse_worker.py), so a hostile file can
    # only fail itself: the workers at once, each one's address space (MB), the seconds (wall, and
    # CPU) a document may take without progress (each OCR'd page renews them), documents per worker.
    kb_parse_workers: int = 2
    kb_parse_memory_mb: int = 2048
    kb_parse_timeout_s: float = 300.0
    kb_parse_recycle: int = 50

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def _coerce_env(name: str, raw: str, annotation: Any) -> Any:
    text = str(annotation)
    if text.startswith("dict"):  # BENDI_MODELS='{"NAME": {"engine": "vllm"}}'
        import json

        try:
            return json.loads(raw)
        except ValueError as exc:
            raise UserInputError(f"{ENV_PREFIX}{name.upper()} must be a JSON object: {exc}.") from exc
    if "tuple" in text:
        # ';' separates items that contain commas themselves (LDAP DNs: cn=a,ou=groups,dc=x)
        separator = ";" if ";" in raw else ","
        return tuple(part.strip() for part in raw.split(separator) if part.strip())
    if raw == "" and "None" in text:
        return None
    return raw


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from defaults < TOML file < BENDI_* env < explicit overrides (CLI flags)."""
    values: dict[str, Any] = {}
    env = os.environ
    home = Path(env[f"{ENV_PREFIX}HOME"]).expanduser() if f"{ENV_PREFIX}HOME" in env else None
    config_file = config_file or (Path(env[f"{ENV_PREFIX}CONFIG"]) if f"{ENV_PREFIX}CONFIG" in env else None)
    if config_file is None:
        candidate = (home or Path.home() / ".bendi") / "config.toml"
        config_file = candidate if candidate.is_file() else None
    if config_file is not None:
        try:
            values.update(tomllib.loads(Path(config_file).read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UserInputError(
                f"Cannot read the settings file {config_file}: {exc}. Fix or remove it."
            ) from exc
    for name, field in Settings.model_fields.items():
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = _coerce_env(name, env[key], field.annotation)
    if "HF_ENDPOINT" in env and f"{ENV_PREFIX}HF_ENDPOINT" not in env:
        values["hf_endpoint"] = env["HF_ENDPOINT"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise UserInputError(
            f"Invalid settings ({problems}). Check BENDI_* environment variables and {config_file or 'config.toml'}."
        ) from exc
