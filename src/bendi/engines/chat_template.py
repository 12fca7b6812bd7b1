"""Chat templates from GGUF metadata, rendered in a sandboxed Jinja environment."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bendi.core.errors import InvalidModelFileError, UserInputError
from bendi.engines.messages import ChatMessage, RenderedPrompt

# Used when a GGUF carries no template: ChatML, which most instruct models of the era understand.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


class _StrictSandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox turns a forbidden attribute into an Undefined that prints as ""; a template
    that reaches for Python internals is hostile or broken, so fail loudly instead."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe.")


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's own tojson HTML-escapes <, > and &, which would change tool schemas in the prompt.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return _dt.datetime.now().strftime(fmt)


@dataclass(frozen=True)
class ChatTemplate:
    """A compiled chat template. The sandbox refuses attribute access to Python internals
    (`__class__`, `__globals__`, ...) and mutation, so a hostile GGUF cannot run code."""

    source: str
    bos_token: str = ""
    eos_token: str = ""

    def __post_init__(self) -> None:
        # The same environment as Hugging Face's apply_chat_template, which templates are written for.
        env = _StrictSandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            object.__setattr__(self, "_compiled", env.from_string(self.source))
        except TemplateError as exc:
            raise InvalidModelFileError(f"The model's chat template does not compile: {exc}") from exc

    def render(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        payload: list[dict[str, Any]] = []
        for message in messages:
            item: dict[str, Any] = {"role": message.role, "content": message.content}
            if message.reasoning:
                item["reasoning_content"] = message.reasoning
            payload.append(item)
        try:
            text = self._compiled.render(  # type: ignore[attr-defined]
                messages=payload,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except SecurityError as exc:
            raise InvalidModelFileError(
                f"The model's chat template tried something unsafe and was stopped: {exc}"
            ) from exc
        except TemplateError as exc:
            raise UserInputError(f"The chat template refused these messages: {exc}") from exc
        return RenderedPrompt(text=text, opens_reasoning=ends_inside_think(text))


def ends_inside_think(text: str) -> bool:
    """True when the prompt leaves a <think> block open (R1 distill templates end with "<think>\\n")."""
    opened = text.rfind(THINK_OPEN)
    return opened != -1 and text.rfind(THINK_CLOSE) < opened
