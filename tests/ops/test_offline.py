"""The offline guarantee: the product works in a network namespace with no route, and a normal session of
`bendi serve` tries to reach nothing but loopback (Python's audit hooks and, where present, strace)."""

from __future__ import annotations

import ast
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from bendi.ops.demo import DEMO_LIBRARY
from server_process import free_port

HERE = Path(__file__).resolve().parent
BENDI = str(Path(sys.executable).parent / "bendi")
LAW = DEMO_LIBRARY / "lawrefbook" / "社会法" / "矿山安全法(2009-08-27).md"  # 第七条: 同时设计
EXPECTED_STEPS = ("no route out", "bendi plan", "bendi doctor", "bendi up", "chat (OpenAI client)",
                  "kb create (CLI)", "kb ingest (upload)", "kb search (HTTP)", "kb ask (HTTP)", "stop",
                  "kb search (CLI)")  # fmt: skip
# Generous: on a loaded 2-core machine one session has taken 4+ minutes; alone it takes about one.
SESSION_TIMEOUT_S = 540


def _can_unshare_network() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.timeout(SESSION_TIMEOUT_S + 60)
def test_whole_product_works_in_a_namespace_without_network(tmp_path: Path) -> None:
    if not _can_unshare_network():
        pytest.skip("cannot create a network namespace here (needs root: `unshare -n`)")
    home, report = tmp_path / "home", tmp_path / "report.json"
    home.mkdir()
    env = dict(os.environ, BENDI_HOME=str(home), BENDI_THREADS="2", PYTHONUNBUFFERED="1")
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(HERE / "offline_session.py"), str(report), str(free_port()),
         str(LAW)],
        env=env, capture_output=True, text=True, timeout=SESSION_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    steps: dict[str, dict[str, Any]] = json.loads(report.read_text())
    failed = {name: step["detail"] for name, step in steps.items() if not step["ok"]}
    up_log = home / "up.log"
    assert not failed, json.dumps(failed, ensure_ascii=False, indent=1) + (
        up_log.read_text(errors="replace")[-2000:] if up_log.exists() else ""
    )
    assert tuple(steps) == EXPECTED_STEPS
    assert "Network is unreachable" in steps["no route out"]["detail"]


SITECUSTOMIZE = '''\
"""Test hook: append every socket address and name lookup this process attempts to BENDI_TEST_NET_LOG."""
import json, os, sys

_LOG = os.environ["BENDI_TEST_NET_LOG"]
_EVENTS = {"socket.connect": 1, "socket.sendto": 1, "socket.sendmsg": 1, "socket.bind": 1,
           "socket.getaddrinfo": 0, "socket.gethostbyname": 0, "socket.gethostbyaddr": 0}


def _hook(event, args):
    where = _EVENTS.get(event)
    if where is None:
        return
    try:
        family = int(getattr(args[0], "family", -1)) if where == 1 else -1
        record = {"event": event, "pid": os.getpid(), "family": family, "address": repr(args[where])}
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\\n")
    except Exception:
        pass


sys.addaudithook(_hook)
'''
# strace: "connect(5, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.2")}, 16)"
# (the address may come later in the call too: sendto's destination, sendmsg's msg_name)
_STRACE_INET = re.compile(
    r"^\d+\s+(\w+)\(.*?\{sa_family=AF_INET6?, sin6?_port=htons\((\d+)\).*?"
    r'(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")',
    re.MULTILINE,
)
INET = (int(socket.AF_INET), int(socket.AF_INET6))


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _own_names() -> set[str]:
    return {"localhost", socket.gethostname(), socket.getfqdn(), "127.0.0.1", "::1", "0.0.0.0", ""}


def _session(base: str) -> None:
    """What a user does in a normal session: chat through both APIs, a knowledge base, the web UI."""
    from openai import OpenAI

    client = OpenAI(base_url=base + "/v1", api_key="bendi", max_retries=0)
    client.chat.completions.create(
        model="smollm2:135m", max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
    )
    ollama = httpx.post(base + "/api/chat", timeout=120, json={
        "model": "smollm2:135m", "stream": False, "options": {"num_predict": 8},
        "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip
    assert ollama.status_code == 200, ollama.text
    for path in ("/", "/js/app.js", "/v1/models", "/api/tags", "/api/ps", "/v1/conversations", "/metrics"):
        httpx.get(base + path, timeout=30)
    assert httpx.post(base + "/v1/knowledge-bases", json={"name": "mining"}, timeout=30).status_code == 201
    with open(LAW, "rb") as handle:
        upload = httpx.post(base + "/v1/knowledge-bases/mining/documents", timeout=60,
                            files={"files": (LAW.name, handle, "text/markdown")})  # fmt: skip
    assert upload.status_code == 202, upload.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        docs = httpx.get(base + "/v1/knowledge-bases/mining/documents", timeout=30).json()["data"]
        if docs and docs[0]["status"] not in ("queued", "processing"):
            break
        time.sleep(0.5)
    assert docs[0]["status"] == "indexed", docs
    hits = httpx.post(base + "/v1/knowledge-bases/mining/search", timeout=60,
                      json={"query": "安全设施 同时设计", "top_k": 2}).json()["data"]  # fmt: skip
    assert hits
    asked = httpx.post(base + "/v1/knowledge-bases/mining/ask", timeout=180, json={
        "question": "矿山建设工程的安全设施必须和主体工程同时设计吗？", "model": "smollm2:135m", "max_tokens": 8,
        "top_k": 1})  # fmt: skip
    assert asked.status_code == 200, asked.text


@pytest.mark.timeout(SESSION_TIMEOUT_S)
def test_serve_reaches_nothing_but_loopback(tmp_path: Path) -> None:
    hook_dir, home = tmp_path / "hook", tmp_path / "home"
    hook_dir.mkdir()
    home.mkdir()
    (hook_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    audit_log, strace_log, server_log = (
        tmp_path / "audit.jsonl",
        tmp_path / "strace.txt",
        tmp_path / "serve.log",
    )
    port = free_port()
    env = dict(os.environ, BENDI_HOME=str(home), BENDI_THREADS="2", PYTHONUNBUFFERED="1",
               BENDI_TEST_NET_LOG=str(audit_log),
               PYTHONPATH=os.pathsep.join(p for p in (str(hook_dir), os.environ.get("PYTHONPATH")) if p))  # fmt: skip
    argv = [BENDI, "serve", "--port", str(port), "--model", "smollm2:135m"]
    strace = shutil.which("strace")
    if strace is not None:  # also what native code (llama.cpp, the embedder) might do, below Python
        argv = [
            strace,
            "-f",
            "-qq",
            "-e",
            "trace=bind,connect,sendto,sendmsg,sendmmsg",
            "-o",
            str(strace_log),
            *argv,
        ]
    with open(server_log, "wb") as log:
        server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while not _model_loaded(base):
                assert server.poll() is None and time.monotonic() < deadline, server_log.read_text()[-3000:]
                time.sleep(0.3)
            _session(base)
        finally:
            # strace blocks fatal signals for itself when it runs a command: stop bendi, strace follows.
            target = psutil.Process(server.pid).children() if strace else []
            (target[0].send_signal if target else server.send_signal)(signal.SIGTERM)
            try:
                stopped_s: float | None = _wait_s(server, 60)
            except subprocess.TimeoutExpired:
                stopped_s = None  # judged after the record: what it tried to reach matters most
                server.kill()
                server.wait()

    records = [json.loads(line) for line in audit_log.read_text().splitlines()]
    # The hook really watched the server: it saw the listening socket being bound.
    assert any(r["event"] == "socket.bind" and str(port) in r["address"] for r in records), records[:20]
    outward = []
    for r in records:
        if r["event"] in ("socket.connect", "socket.sendto", "socket.sendmsg") and r["family"] in INET:
            address = ast.literal_eval(r["address"])
            host = address[0] if isinstance(address, tuple) else address
            if not _is_loopback(str(host)):
                outward.append(r)
        elif r["event"].startswith("socket.get"):
            host = ast.literal_eval(r["address"])
            if str(host) not in _own_names() and not _is_loopback(str(host)):
                outward.append(r)
    assert not outward, outward
    assert stopped_s is not None, (
        f"bendi serve did not stop within 60 s of SIGTERM:\n{server_log.read_text()[-2000:]}"
    )
    if strace is None:
        return
    traced = strace_log.read_text(errors="replace")
    calls = _STRACE_INET.findall(traced)
    assert any(call == "bind" and int(p) == port for call, p, _, _ in calls), traced[:2000]
    outside = [c for c in calls if c[0] != "bind" and not _is_loopback(c[2] or c[3])]
    assert not outside, outside


def _wait_s(process: subprocess.Popen[bytes], timeout_s: float) -> float:
    started = time.monotonic()
    process.wait(timeout=timeout_s)
    return time.monotonic() - started


def _model_loaded(base: str) -> bool:
    try:
        return bool(httpx.get(base + "/api/ps", timeout=2).json().get("models"))
    except (httpx.HTTPError, ValueError):
        return False
