"""bendi (本地): DeepSeek models on your own hardware in one command."""

import os as _os

__version__ = "0.1.0"

# Nothing leaves the machine, including from the libraries bendi loads or starts: onnxruntime (OCR)
# looks up mobile.events.data.microsoft.com for its telemetry as soon as it is imported (found by
# tests/ops/test_offline.py), vLLM and Ray send usage statistics, the Hugging Face hub counts
# downloads. Set before any of them is imported or started; engine processes inherit it. An operator's
# own value wins.
for _name, _value in (
    ("ORT_DISABLE_TELEMETRY", "1"),
    ("DO_NOT_TRACK", "1"),
    ("VLLM_NO_USAGE_STATS", "1"),
    ("RAY_USAGE_STATS_ENABLED", "0"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
):
    _os.environ.setdefault(_name, _value)
