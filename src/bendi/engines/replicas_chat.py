"""Chat pass-through for replicas whose chat template bendi cannot know (a vLLM or SGLang serving a
model that has no copy in this bendi's store): the chat goes to the replica's /v1/chat/completions
and the replica renders it.

The engine seam carries a rendered prompt as text, so a passed-through chat travels as an opaque
prompt (a marker then the messages as JSON) that only UpstreamEngine.generate opens. Everything
bendi does around the engine (admission, quotas, auth, metrics, affinity) is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bendi.engines.messages import ChatMessage, RenderedPrompt
from bendi.engines.reasoning import THINK_CLOSE, THINK_OPEN

# NUL never occurs in a rendered template, so a real prompt cannot be mistaken for a chat.
MARKER = "\x00bendi-chat\x00"


def encode_chat(messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> RenderedPrompt:
    """The opaque prompt for a chat. The reasoning of earlier assistant turns is left out, as chat
    templates of reasoning models do."""
    payload = {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "add_generation_prompt": add_generation_prompt,
    }
    return RenderedPrompt(MARKER + json.dumps(payload, ensure_ascii=False, separators=(",", ":")))


def decode_chat(prompt: str) -> dict[str, Any] | None:
    """The chat inside an opaque prompt, else None (a raw prompt, e.g. from /v1/completions)."""
    if not prompt.startswith(MARKER):
        return None
    payload: dict[str, Any] = json.loads(prompt[len(MARKER) :])
    return payload


def chat_body(completion_body: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any]:
    """The /v1/chat/completions body: the same sampling as the /v1/completions one, with messages."""
    # The replica's own reasoning parser splits the answer here, so its special tokens stay hidden as
    # in any chat of its own (the completions path keeps them to split <think> in bendi).
    dropped = ("prompt", "add_special_tokens", "skip_special_tokens", "spaces_between_special_tokens")
    body = {k: v for k, v in completion_body.items() if k not in dropped}
    body["messages"] = chat["messages"]
    if not chat.get("add_generation_prompt", True):
        body["add_generation_prompt"] = False  # vLLM/SGLang extension; the default is True
    return body


class ChatDeltas:
    """Chat-completion chunks back into the text the completions path would have produced: the
    replica's own reasoning parser output (`reasoning_content`, or `reasoning` in newer vLLM)
    becomes <think>…</think> again, so bendi's splitter and its field-name setting apply."""

    def __init__(self) -> None:
        self._in_reasoning = False

    def text(self, choice: dict[str, Any]) -> str:
        delta = choice.get("delta") or choice.get("message") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        content = delta.get("content") or ""
        out = []
        if reasoning:
            if not self._in_reasoning:
                out.append(THINK_OPEN)
                self._in_reasoning = True
            out.append(reasoning)
        if content:
            if self._in_reasoning:
                out.append(THINK_CLOSE)
                self._in_reasoning = False
            out.append(content)
        return "".join(out)
