"""An Engine over any OpenAI-compatible server (vLLM, SGLang, llama-server, another bendi)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence

import httpx

from bendi.core.errors import ContextOverflowError, EngineError
from bendi.engines.messages import (
    ChatMessage,
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    RenderedPrompt,
    TextDelta,
    Usage,
)
from bendi.engines.protocol import EngineInfo

ChatRenderer = Callable[[Sequence[ChatMessage], bool], RenderedPrompt]
# Without a tokenize endpoint, count conservatively: ~3 UTF-8 bytes per token over-counts Chinese
# and English alike, so a context check errs on the side of refusing rather than overflowing.
BYTES_PER_TOKEN_ESTIMATE = 3


class UpstreamEngine:
    """Text in, text out over /v1/completions, so chat rendering and reasoning splitting stay in bendi
    (one dialect for every engine). Closing a generation closes the HTTP stream, which makes the
    upstream server cancel the request."""

    def __init__(
        self,
        base_url: str,
        info: EngineInfo,
        renderer: ChatRenderer,
        *,
        served_model_name: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._info = info
        self._renderer = renderer
        self._served = served_model_name or info.model_name
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(timeout_s, connect=10.0)
        self._client = httpx.AsyncClient(
            base_url=self._base_url, headers=headers, timeout=timeout, trust_env=False
        )
        self._sync = httpx.Client(base_url=self._base_url, headers=headers, timeout=10.0, trust_env=False)

    @property
    def info(self) -> EngineInfo:
        return self._info

    def render_chat(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        return self._renderer(messages, add_generation_prompt)

    def count_tokens(self, text: str, *, parse_special: bool = True) -> int:
        # vLLM/SGLang: {"model", "prompt"} -> {"count"}; llama-server: {"content"} -> {"tokens"}.
        for body in ({"model": self._served, "prompt": text, "add_special_tokens": False}, {"content": text}):
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
        prompt_tokens = self.count_tokens(request.prompt)
        if prompt_tokens >= self._info.context_tokens:
            raise ContextOverflowError(prompt_tokens, self._info.context_tokens, params.max_tokens)
        body: dict[str, object] = {
            "model": self._served,
            "prompt": request.prompt,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": params.temperature,
            "top_p": params.top_p,
            "presence_penalty": params.presence_penalty,
            "frequency_penalty": params.frequency_penalty,
            "max_tokens": params.max_tokens or max(1, self._info.context_tokens - prompt_tokens),
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        started = time.monotonic()
        first_token_at: float | None = None
        finish: FinishReason = "stop"
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=0)
        completion_tokens = 0
        try:
            async with self._client.stream("POST", "/v1/completions", json=body) as response:
                if response.status_code != 200:
                    detail = (await response.aread()).decode("utf-8", "replace")[:500]
                    raise EngineError(f"The engine server answered {response.status_code}: {detail}")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    chunk = json.loads(payload)
                    if chunk.get("usage"):
                        u = chunk["usage"]
                        usage = Usage(
                            int(u.get("prompt_tokens", prompt_tokens)), int(u.get("completion_tokens", 0))
                        )
                    for choice in chunk.get("choices") or []:
                        text = choice.get("text") or ""
                        if text:
                            if first_token_at is None:
                                first_token_at = time.monotonic()
                            completion_tokens += 1
                            yield TextDelta(text)
                        if choice.get("finish_reason") in ("stop", "length"):
                            finish = choice["finish_reason"]
        except httpx.HTTPError as exc:
            raise EngineError(f"Lost the connection to the engine server at {self._base_url}: {exc}") from exc
        if usage.completion_tokens == 0:
            usage = Usage(usage.prompt_tokens, completion_tokens)
        now = time.monotonic()
        yield Finished(
            finish_reason=finish,
            usage=usage,
            time_to_first_token_s=(first_token_at or now) - started,
            total_time_s=now - started,
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        response = await self._client.post(
            "/v1/embeddings", json={"model": self._served, "input": list(texts)}
        )
        if response.status_code != 200:
            raise EngineError(
                f"The engine server refused embeddings ({response.status_code}): {response.text[:300]}"
            )
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        return [list(map(float, item["embedding"])) for item in data]

    async def close(self) -> None:
        await self._client.aclose()
        self._sync.close()
