"""Read an Ollama Modelfile (or a bendi Benfile) into a Preset; every error names its line.

Only reads text: resolving FROM (an installed model, a GGUF to import, another preset) is the
store's job afterwards (store/presets_create.py), so parsing never touches the disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bendi.core.errors import ModelfileError, PayloadTooLargeError
from bendi.store.local_model import AdapterRef
from bendi.store.modelfile_params import ADAPTER_SCALE, MAX_STOPS, check_parameter
from bendi.store.presets import Preset
from bendi.store.reference import is_hub_reference

MAX_MODELFILE_BYTES = 1_000_000  # a generous system prompt is a few kB; 1 MB is a mistake or an attack
INSTRUCTIONS = ("from", "system", "parameter", "template", "message", "adapter", "license", "knowledge")
MESSAGE_ROLES = ("system", "user", "assistant")
TRIPLE = '"""'


@dataclass(frozen=True)
class Instruction:
    keyword: str  # lower case
    value: str  # the rest of the line, or the text of a """block"""
    line: int
    head: str | None = None  # with a block: the words before it (`PARAMETER stop """..."""` -> "stop")


def _split_quoted(text: str, line: int) -> tuple[str, str]:
    """A "double-quoted" value (JSON escapes) at the start of `text`, and what follows it."""
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(text)
    except ValueError as exc:
        raise ModelfileError(f'unterminated or malformed "quoted" value ({exc.args[0]}).', line) from None
    if not isinstance(value, str):  # raw_decode of '"' always yields a str; kept for the type checker
        raise ModelfileError("expected a quoted string.", line)
    return value, text[end:]


def _instructions(text: str) -> list[Instruction]:
    """Split the text into instructions, joining \"\"\"multi-line\"\"\" values."""
    lines = text.splitlines()
    found: list[Instruction] = []
    index = 0
    while index < len(lines):
        number, raw = index + 1, lines[index].strip()
        index += 1
        if not raw or raw.startswith("#"):
            continue
        keyword, _, rest = raw.partition(" ")
        keyword, rest = keyword.lower(), rest.strip()
        if "\t" in keyword:  # "FROM\tmodel": tabs separate as well as spaces
            keyword, _, tail = keyword.partition("\t")
            rest = (tail + " " + rest).strip()
        if keyword not in INSTRUCTIONS:
            raise ModelfileError(
                f"unknown instruction {keyword.upper()!r}; use one of "
                f"{', '.join(i.upper() for i in INSTRUCTIONS)}.",
                number,
            )
        head, sep, after = rest.partition(TRIPLE)
        if sep:  # PARAMETER stop """x""" / MESSAGE user """...""" / SYSTEM """...""" (maybe multi-line)
            parts = [after]
            while TRIPLE not in parts[-1]:
                if index >= len(lines):
                    raise ModelfileError('a """ value is never closed.', number)
                parts.append(lines[index])
                index += 1
            body = "\n".join(parts)
            value, _, trailing = body.partition(TRIPLE)
            if trailing.strip():
                raise ModelfileError(
                    f'unexpected text after the closing """: {trailing.strip()[:40]!r}.', index
                )
            found.append(Instruction(keyword, value, number, head.strip()))
        else:
            found.append(Instruction(keyword, rest, number))
    return found


def _name_and_value(instruction: Instruction, what: str) -> tuple[str, str]:
    """`PARAMETER name value` / `MESSAGE role content`: the first word, then the (maybe quoted) rest."""
    if instruction.head is not None:  # the value was a \"\"\"block\"\"\"
        if not instruction.head:
            raise ModelfileError(
                f"{instruction.keyword.upper()} needs a {what} before the value.", instruction.line
            )
        return instruction.head, instruction.value
    name, _, rest = instruction.value.partition(" ")
    rest = rest.strip()
    if not name or not rest:
        raise ModelfileError(f"{instruction.keyword.upper()} needs a {what} and a value.", instruction.line)
    if rest.startswith('"'):
        value, trailing = _split_quoted(rest, instruction.line)
        if trailing.strip():
            raise ModelfileError(f"unexpected text after the quoted value: {trailing.strip()[:40]!r}.",
                                 instruction.line)  # fmt: skip
        return name, value
    return name, rest


def _single(instruction: Instruction) -> str:
    """The value of SYSTEM / TEMPLATE / LICENSE / FROM / ADAPTER / KNOWLEDGE (maybe quoted)."""
    value = instruction.value
    if instruction.head:
        raise ModelfileError(
            f'unexpected text before the """ value: {instruction.head[:40]!r}.', instruction.line
        )
    if instruction.head is None and value.startswith('"'):
        value, trailing = _split_quoted(value, instruction.line)
        if trailing.strip():
            raise ModelfileError(f"unexpected text after the quoted value: {trailing.strip()[:40]!r}.",
                                 instruction.line)  # fmt: skip
    return value


def _looks_like_path(value: str) -> bool:
    if is_hub_reference(value):  # hf:owner/repo/file.gguf names a pulled model, not a file here
        return False
    return value.startswith(("/", "./", "../", "~")) or value.lower().endswith((".gguf", ".safetensors"))


def _resolve_path(value: str, base_dir: Path) -> str:
    path = Path(value).expanduser()
    # Absolute but not resolved: errors name the file as the Modelfile does, not a symlink's target.
    return os.path.abspath(path if path.is_absolute() else base_dir / path)


def parse_modelfile(text: str, base_dir: Path, *, name: str = "") -> Preset:
    """The preset a Modelfile describes. FROM and ADAPTER paths are made absolute against `base_dir`
    (the Modelfile's folder); `name` is filled in by whoever saves it."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_MODELFILE_BYTES:
        raise PayloadTooLargeError(
            f"The Modelfile is {len(text.encode('utf-8', 'surrogatepass')) / 1e6:.1f} MB; the limit is "
            f"{MAX_MODELFILE_BYTES / 1e6:.0f} MB. Put long reference text in a knowledge base (KNOWLEDGE) instead."
        )
    if "\0" in text:
        raise ModelfileError("the Modelfile contains a NUL byte; is it a binary file?")
    base: str | None = None
    fields: dict[str, Any] = {"system": None, "template": None, "license": None, "knowledge_base": None}
    parameters: dict[str, Any] = {}
    messages: list[dict[str, str]] = []
    adapter_paths: list[str] = []
    scale = 1.0
    for instruction in _instructions(text):
        keyword, line = instruction.keyword, instruction.line
        if keyword == "parameter":
            key, raw = _name_and_value(instruction, "parameter name")
            key, value = check_parameter(key, raw, line)
            if key == ADAPTER_SCALE:
                scale = float(value)
            elif key == "stop":
                parameters.setdefault("stop", []).append(value)
            else:
                parameters[key] = value
        elif keyword == "message":
            role, content = _name_and_value(instruction, "role")
            if role.lower() not in MESSAGE_ROLES:
                raise ModelfileError(f"MESSAGE role {role!r} is not one of {', '.join(MESSAGE_ROLES)}.", line)
            messages.append({"role": role.lower(), "content": content.strip()})
        else:
            value = _single(instruction)
            if not value.strip():
                raise ModelfileError(f"{keyword.upper()} needs a value.", line)
            if keyword == "from":
                if base is not None:
                    raise ModelfileError("FROM appears twice; a preset has one base.", line)
                base = (
                    _resolve_path(value.strip(), base_dir)
                    if _looks_like_path(value.strip())
                    else value.strip()
                )
            elif keyword == "adapter":
                adapter_paths.append(_resolve_path(value.strip(), base_dir))
            elif keyword == "knowledge":
                fields["knowledge_base"] = value.strip()
            elif keyword == "template":
                fields["template"] = value
            else:  # system, license
                fields[keyword] = value.strip()
    if len(parameters.get("stop", [])) > MAX_STOPS:
        raise ModelfileError(f"at most {MAX_STOPS} PARAMETER stop lines are supported.")
    if base is None:
        raise ModelfileError(
            "no FROM line: say which model this preset is based on, e.g. `FROM smollm2:135m`."
        )
    adapters = [AdapterRef(Path(p), scale) for p in adapter_paths]
    return Preset(name=name, base=base, parameters=parameters, messages=messages, adapters=adapters,
                  modelfile=text, **fields)  # fmt: skip
