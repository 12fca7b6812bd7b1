"""`bendi serve` and `bendi up` as a user starts them: secure host default, banner, a working API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

BENDI = str(Path(sys.executable).parent / "bendi")


def test_serve_refuses_a_public_host_without_an_api_key(bendi_home: Path, port: int) -> None:
    env = dict(os.environ, BENDI_HOME=str(bendi_home))
    result = subprocess.run([BENDI, "serve", "--host", "0.0.0.0", "--port", str(port)], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert "--api-key" in result.stderr and "--insecure-public" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_loads_the_default_model_prints_how_to_use_it_and_serves(bendi_home: Path, port: int) -> None:
    env = dict(os.environ, BENDI_HOME=str(bendi_home), BENDI_THREADS="2", BENDI_PORT=str(port),
               BENDI_CONTEXT_TOKENS="1024")  # fmt: skip
    proc = subprocess.Popen(
        [BENDI, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(base + "/health", timeout=1).json()["models_loaded"] == ["smollm2:135m"]:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        models = httpx.get(base + "/v1/models", timeout=5).json()
        assert "smollm2:135m" in [m["id"] for m in models["data"]]
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert f"{base}/v1/chat/completions" in output  # the curl example
    assert f'OpenAI(base_url="{base}/v1"' in output  # the openai example
    assert proc.returncode == 0
