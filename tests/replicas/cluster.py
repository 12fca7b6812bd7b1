"""Real bendi servers on loopback for the replica tests: replicas of the bundled model and a router."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx

from server_process import ServerProcess, free_port

MODEL = "smollm2:135m"
# Small and light: several of these share two cores with the router and the test itself.
REPLICA_ENV = {"BENDI_THREADS": "1", "BENDI_PROMPT_CACHE_MB": "32"}
REPLICA_ARGS = ("--model", MODEL, "--parallel", "4", "--ctx", "1024")
ROUTER_ENV = {"BENDI_UPSTREAM_HEALTH_INTERVAL_S": "0.3", "BENDI_PARALLEL_SEQUENCES": "64"}


def start_replica(home: Path, port: int | None = None, env: dict[str, str] | None = None) -> ServerProcess:
    home.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(home, port or free_port(), REPLICA_ENV | (env or {}), REPLICA_ARGS)
    server.wait_ready()
    return server


def start_router(home: Path, args: tuple[str, ...], env: dict[str, str] | None = None) -> ServerProcess:
    home.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(home, free_port(), ROUTER_ENV | (env or {}), args)
    server.wait_ready()
    return server


def upstream_args(model: str, replicas: list[ServerProcess]) -> tuple[str, ...]:
    return tuple(arg for r in replicas for arg in ("--upstream", f"{model}={r.base_url}"))


def replica_rows(router: ServerProcess, metric: str, model: str = MODEL) -> dict[str, float]:
    """One /metrics family of the router for one model, by replica URL."""
    text = httpx.get(router.base_url + "/metrics", timeout=10).text
    rows = re.findall(rf'^{metric}{{model="{re.escape(model)}",replica="([^"]+)"}} (\S+)$', text, re.M)
    return {url: float(value) for url, value in rows}


def chat(base_url: str, content: str, *, model: str = MODEL, max_tokens: int = 4,
         history: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None) -> dict:  # fmt: skip
    messages = [*(history or []), {"role": "user", "content": content}]
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    response = httpx.post(base_url + "/v1/chat/completions", json=body, timeout=120, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def stream_chat(client: httpx.Client, base_url: str, content: str, max_tokens: int) -> tuple[str, str | None]:
    """(text, error message or None) of one streamed chat; an HTTP error status counts as an error."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "temperature": 0.7, "stream": True}  # fmt: skip
    text: list[str] = []
    with client.stream("POST", base_url + "/v1/chat/completions", json=body, timeout=120) as response:
        if response.status_code != 200:
            return "", f"HTTP {response.status_code}: {response.read().decode(errors='replace')[:300]}"
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                return "".join(text), str(chunk["error"].get("message"))
            for choice in chunk.get("choices") or []:
                text.append((choice.get("delta") or {}).get("content") or "")
    return "".join(text), None


def wait_for(condition, timeout_s: float = 30.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
