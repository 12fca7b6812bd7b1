"""Inside a network namespace with no route (test_offline.py starts it there): the whole product, step by
step, written as a JSON report. Usage: offline_session.py REPORT.json PORT FILE (FILE holds the article
that answers QUESTION; it is uploaded to the server and searched from the CLI too)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

BENDI = str(Path(sys.executable).parent / "bendi")
QUESTION = "矿山建设工程的安全设施必须和主体工程同时设计吗？"


def _cli(*args: str, timeout_s: float = 180) -> str:
    done = subprocess.run([BENDI, *args], capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0 or "Traceback" in done.stderr:
        raise AssertionError(f"bendi {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def loopback_up() -> None:
    """A new network namespace starts with `lo` down; bring it up (what `ip link set lo up` does)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def no_route() -> str:
    """The namespace really is offline: no address outside the machine is reachable or resolvable."""
    try:
        socket.create_connection(("1.1.1.1", 443), timeout=3).close()
    except OSError as exc:
        outward = f"connect 1.1.1.1:443 -> {exc}"
    else:
        raise AssertionError("1.1.1.1:443 answered: this namespace has a route out")
    try:
        socket.getaddrinfo("pypi.org", 443)
    except socket.gaierror as exc:
        return f"{outward}; resolve pypi.org -> {exc}"
    raise AssertionError("pypi.org resolved inside the namespace")


def cli_search() -> str:
    found = _cli("kb", "search", "mining", "矿山建设工程 安全设施 同时设计", "--top-k", "1")
    assert "第七条" in found, found
    return found


class Session:
    def __init__(self, report_path: Path, port: int) -> None:
        self.report_path = report_path
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.steps: dict[str, dict[str, Any]] = {}
        self.server: subprocess.Popen[bytes] | None = None

    def step(self, name: str, action: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            detail = action()
            self.steps[name] = {"ok": True, "detail": detail}
        except Exception as exc:  # recorded, the report says which step and why
            detail = None
            self.steps[name] = {"ok": False, "detail": f"{exc}\n{traceback.format_exc()[-1500:]}"}
        self.steps[name]["s"] = round(time.monotonic() - started, 2)
        self.report_path.write_text(json.dumps(self.steps, ensure_ascii=False, indent=1))
        return detail

    def start(self) -> str:
        """`bendi up`: the best installed model (the bundled one here), loaded and served."""
        log = open(Path(os.environ["BENDI_HOME"]) / "up.log", "wb")  # noqa: SIM115  (lives with the server)
        self.server = subprocess.Popen(
            [BENDI, "up", "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.server.poll() is None, "bendi up exited early"
            try:
                models = httpx.get(self.base + "/api/ps", timeout=2).json().get("models", [])
                if models:
                    return str([m["name"] for m in models])
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        raise AssertionError("bendi up did not load its model within 90 s")

    def chat(self) -> str:
        from openai import OpenAI

        client = OpenAI(base_url=self.base + "/v1", api_key="bendi", max_retries=0)
        reply = client.chat.completions.create(
            model="smollm2:135m", max_tokens=8, messages=[{"role": "user", "content": "Say hello."}]
        )
        text = reply.choices[0].message.content or ""
        assert text.strip(), "empty answer"
        streamed = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(
                model="smollm2:135m", max_tokens=8, stream=True, messages=[{"role": "user", "content": "Hi"}]
            )
            if chunk.choices
        )
        assert streamed.strip(), "empty streamed answer"
        return text

    def upload(self, path: Path) -> str:
        with open(path, "rb") as handle:
            done = httpx.post(f"{self.base}/v1/knowledge-bases/mining/documents", timeout=60,
                              files={"files": (path.name, handle, "text/markdown")})  # fmt: skip
        assert done.status_code == 202, done.text
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            docs = httpx.get(f"{self.base}/v1/knowledge-bases/mining/documents", timeout=10).json()["data"]
            mine = [d for d in docs if d["file"] == path.name]
            if mine and mine[0]["status"] not in ("queued", "processing"):
                assert mine[0]["status"] == "indexed", mine[0]
                return f"{mine[0]['chunks']} chunks"
            time.sleep(0.5)
        raise AssertionError("the upload was not indexed within 120 s")

    def search(self) -> str:
        hits = httpx.post(f"{self.base}/v1/knowledge-bases/mining/search", timeout=60,
                          json={"query": "矿山建设工程 安全设施 同时设计", "top_k": 3}).json()["data"]  # fmt: skip
        assert hits and "第七条" in hits[0]["text"], hits[:1]
        return f"{hits[0]['file']}: {hits[0]['text'][:60]}"

    def ask(self) -> str:
        done = httpx.post(f"{self.base}/v1/knowledge-bases/mining/ask", timeout=180,
                          json={"question": QUESTION, "model": "smollm2:135m", "max_tokens": 16, "top_k": 1})  # fmt: skip
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["answer"] and body["citations"], body
        return f"{body['answer'][:80]} | {len(body['citations'])} citations"

    def stop(self) -> str:
        assert self.server is not None
        self.server.send_signal(signal.SIGTERM)
        code = self.server.wait(timeout=30)
        assert code == 0, f"bendi up exited {code}"
        return "stopped cleanly"


def main() -> int:
    report_path, port, upload_file = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    loopback_up()
    session = Session(report_path, port)
    session.step("no route out", no_route)
    session.step("bendi plan", lambda: _cli("plan")[-300:])
    session.step("bendi doctor", lambda: _cli("doctor")[-300:])
    session.step("bendi up", session.start)
    if session.server is not None and session.server.poll() is None:
        session.step("chat (OpenAI client)", session.chat)
        session.step("kb create (CLI)", lambda: _cli("kb", "create", "mining"))
        session.step("kb ingest (upload)", lambda: session.upload(upload_file))
        session.step("kb search (HTTP)", session.search)
        session.step("kb ask (HTTP)", session.ask)
        session.step("stop", session.stop)
    session.step("kb search (CLI)", cli_search)
    if session.server is not None and session.server.poll() is None:
        session.server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
