"""Remote replicas: the MODEL=URL specs (flags, upstreams file) and what each upstream serves."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bendi.core.errors import EngineError, UserInputError
from bendi.core.settings import Settings
from bendi.engines.chat_template import ChatTemplate
from bendi.engines.upstream import Dialect

LOCAL = "local"  # `--upstream MODEL=local`: this bendi's own engine for MODEL is one of the replicas
_FILE_KEYS = {"model", "url", "api_key", "model_id"}


@dataclass(frozen=True)
class UpstreamSpec:
    """One replica of `model`: a server's base URL (or LOCAL), its API key, its own id for the model."""

    model: str
    url: str
    api_key: str | None = field(default=None, repr=False)  # never printed or logged
    model_id: str | None = None  # the upstream's id when it differs from `model` and it serves several


@dataclass(frozen=True)
class Discovered:
    """What an upstream told about itself: its id for the model, dialect, context and chat template."""

    served_id: str
    dialect: Dialect
    context_tokens: int | None
    template: ChatTemplate | None


def _check_url(url: str, where: str) -> str:
    if url == LOCAL:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserInputError(
            f"{where}: {url!r} is not a server address. Give its base URL, e.g. http://10.0.0.5:11435 "
            f"(without /v1), or {LOCAL!r} for this bendi's own engine."
        )
    return url.rstrip("/").removesuffix("/v1")


def parse_upstream(text: str) -> UpstreamSpec:
    """`MODEL=URL` from --upstream / BENDI_UPSTREAMS."""
    model, sep, url = text.partition("=")
    if not sep or not model.strip() or not url.strip():
        raise UserInputError(
            f"--upstream {text!r} must be MODEL=URL, e.g. deepseek-r1:7b=http://10.0.0.5:11435 "
            "(repeat it with the same MODEL for more replicas)."
        )
    return UpstreamSpec(model.strip(), _check_url(url.strip(), f"--upstream {model.strip()}"))


def read_upstreams_file(path: Path) -> list[UpstreamSpec]:
    """[[replica]] tables with model, url and optionally api_key and model_id."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserInputError(
            f"Cannot read the upstreams file {path}: {exc}. Fix it or leave it out."
        ) from exc
    tables = data.get("replica")
    if not isinstance(tables, list) or set(data) - {"replica"}:
        raise UserInputError(
            f'The upstreams file {path} must hold [[replica]] tables only, each with model = "NAME" and '
            'url = "http://HOST:PORT" (and optionally api_key, model_id).'
        )
    specs = []
    for number, table in enumerate(tables, 1):
        where = f"{path}, replica {number}"
        unknown = set(table) - _FILE_KEYS
        if unknown:
            raise UserInputError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_FILE_KEYS))}."
            )
        if not all(isinstance(table.get(k), str) and table[k].strip() for k in ("model", "url")):
            raise UserInputError(f'{where}: needs model = "NAME" and url = "http://HOST:PORT".')
        for key in ("api_key", "model_id"):
            if key in table and not isinstance(table[key], str):
                raise UserInputError(f"{where}: {key} must be a string.")
        specs.append(UpstreamSpec(table["model"].strip(), _check_url(table["url"].strip(), where),
                                  table.get("api_key") or None, table.get("model_id") or None))  # fmt: skip
    return specs


def upstream_specs(settings: Settings) -> dict[str, list[UpstreamSpec]]:
    """Replicas by model name, from settings.upstreams then settings.upstreams_file (one per URL)."""
    specs = [parse_upstream(text) for text in settings.upstreams]
    if settings.upstreams_file is not None:
        specs += read_upstreams_file(settings.upstreams_file)
    by_model: dict[str, list[UpstreamSpec]] = {}
    for spec in specs:
        replicas = by_model.setdefault(spec.model, [])
        if all(r.url != spec.url for r in replicas):
            replicas.append(spec)
    return by_model


def headers(spec: UpstreamSpec) -> dict[str, str]:
    return {"Authorization": f"Bearer {spec.api_key}"} if spec.api_key else {}


def _jinja(source: object) -> str | None:
    # Ollama's /api/show template is a Go template ({{ .Prompt }}), which bendi cannot render.
    if isinstance(source, str) and source.strip() and "{{ ." not in source and "{{." not in source:
        return source
    return None


async def discover(client: httpx.AsyncClient, spec: UpstreamSpec) -> Discovered:
    """Ask the upstream which id it serves the model under (/v1/models), and for its chat template:
    llama-server's /props, else bendi's (or Ollama's) /api/show. Raises httpx.HTTPError when it
    cannot be reached and a BendiError when it answers but cannot serve the model."""
    response = await client.get("/v1/models", headers=headers(spec))
    if response.status_code in (401, 403):
        raise UserInputError(
            f"The replica at {spec.url} refused bendi's API key for {spec.model} ({response.status_code}); "
            "set api_key for it in the upstreams file."
        )
    if response.status_code != 200:
        raise EngineError(f"The replica at {spec.url} answered /v1/models with {response.status_code}.")
    cards: list[dict[str, Any]] = [c for c in response.json().get("data") or [] if isinstance(c, dict)]
    ids = [str(card.get("id")) for card in cards]
    wanted = spec.model_id or spec.model
    if wanted in ids:
        card = cards[ids.index(wanted)]
    elif len(cards) == 1 and spec.model_id is None:
        card = cards[0]  # a vLLM or llama-server serves one model, often under its path
    else:
        raise UserInputError(
            f"The replica at {spec.url} does not serve {wanted!r} (it serves: {', '.join(ids) or 'nothing'}). "
            "Set model_id for it in the upstreams file."
        )
    served = str(card["id"])
    dialect: Dialect = "vllm" if card.get("owned_by") in ("vllm", "sglang") else "openai"
    context = card.get("max_model_len")
    template: ChatTemplate | None = None
    props = await client.get("/props", headers=headers(spec))
    if props.status_code == 200 and isinstance(props.json(), dict):
        data = props.json()
        source = _jinja(data.get("chat_template"))
        if source:
            # llama-server adds BOS itself: the template's own would be a second one.
            template = ChatTemplate(source, bos_token="", eos_token=str(data.get("eos_token") or ""))
        n_ctx = (data.get("default_generation_settings") or {}).get("n_ctx")
        context = context or n_ctx
    if template is None and dialect == "openai":
        show = await client.post("/api/show", json={"model": served}, headers=headers(spec))
        if show.status_code == 200 and isinstance(show.json(), dict):
            source = _jinja(show.json().get("template"))
            # bendi's llama.cpp engine adds BOS itself (and drops a doubled one), so "" is exact.
            template = ChatTemplate(source) if source else None
    return Discovered(served, dialect, int(context) if isinstance(context, int) else None, template)
