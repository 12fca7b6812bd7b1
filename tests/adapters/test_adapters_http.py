"""A preset with ADAPTER served by a real `bendi serve`: made with `bendi create` in the server's
home, answered through the official openai client with the adapter applied, listed by /api/ps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
from loramaker import write_lora

from server_process import ServerProcess

BASE = "smollm2:135m"


def test_a_preset_with_an_adapter_is_served_and_listed(bendi_server: ServerProcess, tmp_path: Path) -> None:
    lora = write_lora(tmp_path / "safety-lora.gguf", seed=3)
    benfile = tmp_path / "Benfile"
    benfile.write_text(f"FROM {BASE}\nADAPTER {lora}\nPARAMETER adapter_scale 0.8\n")
    home = bendi_server.log_path.parent  # the running server reads presets from its home
    bendi = Path(sys.executable).parent / "bendi"
    env = dict(os.environ, BENDI_HOME=str(home))
    made = subprocess.run([str(bendi), "create", "tuned", "-f", str(benfile)], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr

    client = openai.OpenAI(base_url=bendi_server.base_url + "/v1", api_key="unused", timeout=240)

    def answer(model: str) -> str:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "The capital of France is"}],
            temperature=0, max_tokens=12,
        )  # fmt: skip
        return reply.choices[0].message.content or ""

    assert answer("tuned") != answer(BASE)  # the adapter changes what the model says
    rows = {m["name"]: m for m in httpx.get(bendi_server.base_url + "/api/ps", timeout=30).json()["models"]}
    tuned = next(row for name, row in rows.items() if name.startswith("tuned"))
    (adapter,) = tuned["adapters"]
    assert adapter["name"] == "safety-lora.gguf" and adapter["scale"] == 0.8 and "path" not in adapter
    assert "adapters" not in rows[BASE]
