"""Write a preset back as a Modelfile (what `bendi show --modelfile` and /api/show print).

The output parses back into the same preset (tested): values that hold \"\"\" are written as one
JSON-quoted line instead of a block.
"""

from __future__ import annotations

import json

from bendi.store.modelfile_params import ADAPTER_SCALE, format_value
from bendi.store.presets import Preset


def _text(value: str) -> str:
    if '"""' in value or value.endswith('"'):
        return json.dumps(value, ensure_ascii=False)
    return f'"""{value}"""'


def render_modelfile(preset: Preset) -> str:
    lines = [f"# Modelfile of the bendi preset {preset.name}", f"FROM {preset.base}"]
    if preset.system is not None:
        lines.append(f"SYSTEM {_text(preset.system)}")
    for key, value in preset.parameters.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {key} {format_value(item)}")
    for message in preset.messages:
        lines.append(f"MESSAGE {message['role']} {_text(message['content'])}")
    for adapter in preset.adapters:
        lines.append(f"ADAPTER {adapter.path}")
    if preset.adapters and preset.adapters[0].scale != 1.0:
        lines.append(f"PARAMETER {ADAPTER_SCALE} {preset.adapters[0].scale}")
    if preset.knowledge_base:
        lines.append(f"KNOWLEDGE {preset.knowledge_base}")
    if preset.template is not None:
        lines.append(f"TEMPLATE {_text(preset.template)}")
    if preset.license is not None:
        lines.append(f"LICENSE {_text(preset.license)}")
    return "\n".join(lines) + "\n"


def parameters_text(preset: Preset) -> str:
    """Ollama's /api/show `parameters`: one `name value` line per value (stop repeated)."""
    rows = []
    for key, value in preset.parameters.items():
        for item in value if isinstance(value, list) else [value]:
            rows.append(f"{key:<30} {format_value(item)}")
    return "\n".join(rows)
