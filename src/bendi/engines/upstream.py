"""An Engine over any OpenAI-compatible server (vLLM, SGLang, llama-server, another bendi)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

import httpx

from bendi.core.errors import ContextOverflowError, EngineError, RequestTimeoutError, UserInputError
from bendi.engines.messages import (
    ChatMessage,
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    RenderedPrompt,
    SamplingParams,
    TextDelta,
    Usage,
)
from bendi.engines.protocol import EngineInfo
from bendi.engines.replicas_chat import ChatDeltas, chat_body, decode_chat
from bendi.engines.upstream_http import Response, UpstreamHttp, UpstreamHttpError, UpstreamTimeoutError

ChatRenderer = Callable[[Sequence[ChatMessage], bool], RenderedPrompt]
# "openai": only the standard fields. "vllm": also top_k, min_p, repetition_penalty, ignore_eos, and
# special tokens kept in the text (bendi's reasoning splitter must see "</think>"), which vLLM and
# SGLang accept on /v1/completions.
Dialect = Literal["openai", "vllm"]
# Without a tokenize endpoint, count conservatively: ~3 UTF-8 bytes per token over-counts Chinese
# and English alike, so a context check errs on the side of refusing rather than overflowing.
BYTES_PER_TOKEN_ESTIMATE = 3
_CONTEXT = re.compile(r"maximum context length is (\d+)")
_PROMPT = re.compile(r"(\d+) input tokens|requested (\d+) tokens|prompt \(length (\d+)\)|(\d+) tokens in the")


class UpstreamUnavailableError(EngineError):
    """The engine server could not be reached, or the connection broke mid-answer."""

    def __init__(self, message: str, *, before_output: bool) -> None:
        super().__init__(message)
        self.before_output = before_output


def request_body(
    served: str,
    prompt: str,
    params: SamplingParams,
    context_tokens: int,
    dialect: Dialect,
    *,
    stream: bool = True,
) -> dict[str, Any]:
    """The /v1/completions body. max_tokens is always sent (the OpenAI default is 16) and never above
    the context: vLLM clamps it to the room the prompt leaves, as bendi's llama.cpp engine does."""
    body: dict[str, Any] = {
        "model": served,
        "prompt": prompt,
        "stream": stream,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "max_tokens": max(1, min(params.max_tokens or context_tokens, context_tokens)),
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if dialect == "vllm":
        body.update(
            top_k=params.top_k if params.top_k > 0 else -1,
            min_p=params.min_p,
            repetition_penalty=params.repeat_penalty,
            ignore_eos=params.ignore_eos,
            # The rendered template already holds BOS and the special tokens it needs.
            add_special_tokens=False,
            skip_special_tokens=False,
            spaces_between_special_tokens=False,
        )
    return body


def refusal(status: int, detail: str, max_tokens: int | None) -> Exception:
    """The error for a non-200 answer: a context overflow, a refused request, or a failed engine."""
    try:
        error = json.loads(detail).get("error", {})
        message = str(error.get("message") or detail)
    except (ValueError, AttributeError):
        error, message = {}, detail
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        # llama-server says it in fields: {"n_prompt_tokens": ..., "n_ctx": ...}
        n_ctx = int(error.get("n_ctx") or 0)
        return ContextOverflowError(int(error.get("n_prompt_tokens") or n_ctx), n_ctx, max_tokens)
    context = _CONTEXT.search(message)
    if status == 400 and context:
        prompt = next((int(g) for m in [_PROMPT.search(message)] if m for g in m.groups() if g), 0)
        return ContextOverflowError(prompt or int(context.group(1)), int(context.group(1)), max_tokens)
    if status in (400, 422):
        return UserInputError(f"The engine refused the request: {message[:300]}")
    return EngineError(f"The engine server answered {status}: {message[:500]}")


def _usage(raw: dict[str, Any], fallback_prompt: int) -> Usage:
    details = raw.get("prompt_tokens_details") or {}
    return Usage(
        int(raw.get("prompt_tokens") or fallback_prompt),
        int(raw.get("completion_tokens") or 0),
        int(details.get("cached_tokens") or 0),
    )


async def _chunks(response: Response, stream: bool) -> AsyncIterator[dict[str, Any]]:
    """The answer's JSON objects: each SSE chunk of a stream, or the one object of a whole reply."""
    if not stream:
        yield json.loads(await response.read())
        return
    # Read on past "[DONE]" to the end of the body (right after it): a connection left mid-body is
    # closed instead of reused, which costs a connect per request.
    async for line in response.lines():
        if line.startswith(b"data:") and not line.endswith(b"[DONE]"):
            yield json.loads(line[5:])


class UpstreamEngine:
    """Text in, text out over /v1/completions, so chat rendering and reasoning splitting stay in bendi
    (one dialect for every engine); a chat bendi cannot render goes to /v1/chat/completions instead
    (replicas_chat). Closing a generation closes the HTTP stream, which makes the upstream server
    abort the request."""

    def __init__(
        self,
        base_url: str,
        info: EngineInfo,
        renderer: ChatRenderer,
        *,
        served_model_name: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        dialect: Dialect = "openai",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._info = info
        self._renderer = renderer
        self._served = served_model_name or info.model_name
        self._dialect: Dialect = dialect
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = UpstreamHttp(self.base_url, headers, connect_timeout_s=10.0, read_timeout_s=timeout_s)
        self._sync = httpx.Client(base_url=self.base_url, headers=headers, timeout=10.0, trust_env=False)

    @property
    def info(self) -> EngineInfo:
        return self._info

    def render_chat(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        return self._renderer(messages, add_generation_prompt)

    def count_tokens(self, text: str, *, parse_special: bool = True) -> int:
        # vLLM/SGLang: {"model", "prompt"} -> {"count"}; llama-server: {"content"} -> {"tokens"}.
        bodies: list[dict[str, Any]] = [
            {"model": self._served, "prompt": text, "add_special_tokens": False},
            {"content": text},
        ]
        chat = decode_chat(text)
        if chat is not None:  # a passed-through chat: vLLM/SGLang count its rendering themselves
            bodies = [{"model": self._served, **chat}]
            text = "".join(m["content"] for m in chat["messages"])
        for body in bodies:
            try:
                response = self._sync.post("/tokenize", json=body)
            except httpx.HTTPError:
                break
            if response.status_code == 200:
                data = response.json()
                if "count" in data:
                    return int(data["count"])
                if "tokens" in data:
                    return len(data["tokens"])
        return max(1, len(text.encode("utf-8")) // BYTES_PER_TOKEN_ESTIMATE)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        params = request.params
        body = request_body(self._served, request.prompt, params, self._info.context_tokens, self._dialect,
                            stream=request.stream)  # fmt: skip
        chat = decode_chat(request.prompt)
        path, deltas = "/v1/completions", None
        if chat is not None:
            path, body, deltas = "/v1/chat/completions", chat_body(body, chat), ChatDeltas()
        started = time.monotonic()
        first_token_at: float | None = None
        finish: FinishReason = "stop"
        usage = Usage(0, 0)
        pieces = 0
        response: Response | None = None
        try:
            response = await self._http.request("POST", path, json.dumps(body).encode())
            if response.status != 200:
                detail = (await response.read()).decode("utf-8", "replace")[:2000]
                raise refusal(response.status, detail, params.max_tokens)
            async for chunk in _chunks(response, request.stream):
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"], usage.prompt_tokens)
                if chunk.get("error"):
                    raise EngineError(f"The engine failed during the answer: {chunk['error']}")
                for choice in chunk.get("choices") or ():
                    # a chunk's delta, or the whole reply's message (ChatDeltas reads either)
                    text = (choice.get("text") or "") if deltas is None else deltas.text(choice)
                    if text:
                        if first_token_at is None:
                            first_token_at = time.monotonic()
                        pieces += 1
                        yield TextDelta(text)
                    if choice.get("finish_reason") == "length":
                        finish = "length"
        except UpstreamTimeoutError as exc:
            if not request.stream:  # a whole reply that took longer than the request may take
                raise RequestTimeoutError() from exc
            raise self._lost(exc, first_token_at is None) from exc
        except UpstreamHttpError as exc:
            raise self._lost(exc, first_token_at is None) from exc
        finally:
            if response is not None:
                await response.aclose()
        if usage.completion_tokens == 0:
            usage = Usage(usage.prompt_tokens, pieces, usage.cached_prompt_tokens)
        now = time.monotonic()
        yield Finished(
            finish_reason=finish,
            usage=usage,
            time_to_first_token_s=(first_token_at or now) - started,
            total_time_s=now - started,
            first_token_timed=request.stream,
        )

    def _lost(self, exc: UpstreamHttpError, before_output: bool) -> UpstreamUnavailableError:
        where = "before answering" if before_output else "during the answer"
        return UpstreamUnavailableError(
            f"Lost the connection to the engine server at {self.base_url} {where}: {exc}",
            before_output=before_output,
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        body = json.dumps({"model": self._served, "input": list(texts)}).encode()
        try:
            response = await self._http.request("POST", "/v1/embeddings", body)
            raw = await response.read()
        except UpstreamHttpError as exc:
            raise UpstreamUnavailableError(
                f"Lost the connection to the engine server at {self.base_url}: {exc}", before_output=True
            ) from exc
        if response.status != 200:
            raise EngineError(
                f"The engine server refused embeddings ({response.status}): {raw[:300].decode('utf-8', 'replace')}"
            )
        data = sorted(json.loads(raw)["data"], key=lambda item: item["index"])
        return [list(map(float, item["embedding"])) for item in data]

    async def close(self) -> None:
        await self._http.close()
        self._sync.close()
