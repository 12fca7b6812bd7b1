"""`bendi serve` and `bendi up` as a user starts them: secure host default, banner, a working API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

BENDI = str(Path(sys.executable).parent / "bendi")


def test_a_first_public_start_switches_to_team_mode_with_a_one_time_password(
    bendi_home: Path, port: int
) -> None:
    # The port is taken on loopback, so the public bind fails right after the switch: nothing is ever
    # reachable from the network during the test.
    import socket

    from bendi.access.control import AccessControl
    from bendi.core.paths import DataPaths
    from bendi.core.settings import load_settings

    env = dict(os.environ, BENDI_HOME=str(bendi_home))
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", port))
        taken.listen()
        result = subprocess.run([BENDI, "serve", "--host", "0.0.0.0", "--port", str(port)], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "team mode" in result.stderr and "One-time password:" in result.stderr, result.stderr
    password = result.stderr.split("One-time password:")[1].split()[0]
    assert "Traceback" not in result.stderr
    access = AccessControl(load_settings(home=bendi_home), DataPaths(bendi_home))
    assert access.team_mode
    login = access.authenticator.login("admin", password, "127.0.0.1")
    assert login.user.role == "admin" and login.user.must_change_password
    # the password is printed once, to the terminal, never stored in a log file
    assert not any(password in p.read_text(errors="ignore") for p in bendi_home.rglob("*.log"))


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
