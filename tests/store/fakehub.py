"""A local stand-in for Hugging Face, ModelScope, a plain mirror and a CDN, with fault injection.

Routes (one server; a second instance on another loopback address plays the CDN):
  HEAD/GET /{owner}/{repo}/resolve/main/{path}          HF: 302 to the CDN with X-Linked-Size/-Etag
  GET /api/models/{owner}/{repo}/tree/main?recursive=true  HF repo listing (lfs oid = sha256 for
                                                        LFS files, git blob id otherwise), paged by Link
  GET /api/v1/models/{owner}/{repo}/repo/files?...      ModelScope file listing with Sha256
  GET /api/v1/models/{owner}/{repo}/repo?FilePath=...   ModelScope download
  HEAD/GET /mirror/{owner}/{repo}/{path}                plain mirror
  HEAD/GET /blobs/{sha256}                              CDN: Range, ETag
Faults: ignore Range, drop the connection after N bytes, throttle, scripted status codes, a
wrong advertised hash, a redirect to any URL.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class HubFile:
    path: Path  # served from disk (sendfile), so 100 MB models cost no memory
    sha256: str
    size_bytes: int


@dataclass
class HubState:
    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)  # (repo, path) -> file
    cdn_base: str | None = None  # e.g. http://127.0.0.2:PORT; None: HF serves the bytes itself
    redirect_to: str | None = None  # force HF resolve to redirect here (disallowed-host test)
    ignore_range: bool = False
    drop_after: list[int] = field(default_factory=list)  # per GET with a body: bytes before hanging up
    throttle_bytes_per_s: float | None = None
    advertise_sha: dict[str, str] = field(default_factory=dict)  # path -> sha to claim instead
    advertise_git_oid: dict[str, str] = field(default_factory=dict)  # path -> git blob id to claim instead
    tree_page_size: int = 1000  # entries per HF listing page (a Link header points at the next)
    statuses: list[int] = field(default_factory=list)  # scripted answers to the next requests
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repo: str, path_in_repo: str, source: Path) -> HubFile:
        digest = hashlib.sha256()
        with open(source, "rb") as handle:
            while block := handle.read(8 * 1024 * 1024):
                digest.update(block)
        item = HubFile(source, digest.hexdigest(), source.stat().st_size)
        self.files[(repo, path_in_repo)] = item
        return item

    def by_sha(self, sha: str) -> HubFile | None:
        return next((f for f in self.files.values() if f.sha256 == sha), None)


_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")  # what Hugging Face stores in LFS


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (quiet test output)
        pass

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, head: bool) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        with state.lock:
            state.requests.append((self.command, self.path, self.headers.get("Range")))
            scripted = state.statuses.pop(0) if state.statuses else None
        if scripted is not None:
            return self._empty(scripted)
        path = unquote(url.path)
        if m := re.match(r"^/blobs/([0-9a-f]{64})$", path):
            item = state.by_sha(m.group(1))
            return self._serve(item, head) if item else self._empty(404)
        if m := re.match(r"^/api/models/([^/]+/[^/]+)/tree/main$", path):
            return self._tree(m.group(1), int(parse_qs(url.query).get("cursor", ["0"])[0]))
        if m := re.match(r"^/api/v1/models/([^/]+/[^/]+)/repo/files$", path):
            return self._listing(m.group(1))
        if m := re.match(r"^/api/v1/models/([^/]+/[^/]+)/repo$", path):
            file_path = parse_qs(url.query).get("FilePath", [""])[0]
            item = state.files.get((m.group(1), file_path))
            return self._serve(item, head) if item else self._empty(404)
        if m := re.match(r"^/mirror/([^/]+/[^/]+)/(.+)$", path):
            item = state.files.get((m.group(1), m.group(2)))
            return self._serve(item, head) if item else self._empty(404)
        if m := re.match(r"^/([^/]+/[^/]+)/resolve/main/(.+)$", path):
            repo, file_path = m.group(1), m.group(2)
            item = state.files.get((repo, file_path))
            if item is None:
                return self._empty(404)
            sha = state.advertise_sha.get(file_path, item.sha256)
            target = state.redirect_to or (
                f"{state.cdn_base}/blobs/{item.sha256}" if state.cdn_base else None
            )
            headers = {"X-Linked-Size": str(item.size_bytes), "X-Linked-Etag": f'"{sha}"', "ETag": f'"{sha}"'}
            if target is None:
                return self._serve(item, head, extra=headers)
            self.send_response(302)
            self.send_header("Location", target)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._empty(404)

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _tree(self, repo: str, cursor: int) -> None:
        """Hugging Face's tree API: files (LFS ones with their sha256) and the folders above them."""
        state = self.server.state
        entries: list[dict[str, object]] = []
        folders: set[str] = set()
        for (r, p), f in sorted(state.files.items()):
            if r != repo:
                continue
            for depth in range(1, p.count("/") + 1):
                folders.add(p.rsplit("/", depth)[0])
            entry: dict[str, object] = {"type": "file", "path": p, "size": f.size_bytes}
            if p.endswith(LFS_SUFFIXES):
                entry["oid"] = hashlib.sha1(p.encode()).hexdigest()  # the pointer file's id (unused)
                entry["lfs"] = {
                    "oid": state.advertise_sha.get(p, f.sha256),
                    "size": f.size_bytes,
                    "pointerSize": 134,
                }
            else:
                data = f.path.read_bytes()
                git_id = hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()
                entry["oid"] = state.advertise_git_oid.get(p, git_id)
            entries.append(entry)
        if not entries:
            return self._empty(404)
        entries += [{"type": "directory", "path": d, "size": 0, "oid": "0" * 40} for d in sorted(folders)]
        page = entries[cursor : cursor + state.tree_page_size]
        body = json.dumps(page).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if cursor + state.tree_page_size < len(entries):
            host = self.headers.get("Host")
            nxt = f"http://{host}/api/models/{repo}/tree/main?recursive=true&cursor={cursor + state.tree_page_size}"
            self.send_header("Link", f'<{nxt}>; rel="next"')
        self.end_headers()
        self.wfile.write(body)
        return None

    def _listing(self, repo: str) -> None:
        state = self.server.state
        files = [
            {"Path": p, "Name": p.rsplit("/", 1)[-1], "Type": "blob", "Size": f.size_bytes,
             "Sha256": state.advertise_sha.get(p, f.sha256)}
            for (r, p), f in state.files.items() if r == repo
        ]  # fmt: skip
        if not files:
            return self._empty(404)
        body = json.dumps({"Code": 200, "Data": {"Files": files}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None

    def _serve(self, item: HubFile, head: bool, extra: dict[str, str] | None = None) -> None:
        state = self.server.state
        start, end = 0, item.size_bytes - 1
        status = 200
        match = _RANGE.match(self.headers.get("Range", ""))
        if match and not state.ignore_range:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else end
            if start >= item.size_bytes:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{item.size_bytes}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{item.sha256}"')
        for key, value in (extra or {}).items():
            if key != "ETag":
                self.send_header(key, value)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{item.size_bytes}")
        self.end_headers()
        if head:
            return
        with state.lock:
            budget = state.drop_after.pop(0) if state.drop_after else None
        to_send = length if budget is None else min(budget, length)
        throttle = state.throttle_bytes_per_s  # read once: a test may change it mid-body
        with open(item.path, "rb") as handle:
            if throttle:
                handle.seek(start)
                sent = 0
                while sent < to_send:
                    block = handle.read(min(65536, to_send - sent))
                    self.wfile.write(block)
                    sent += len(block)
                    time.sleep(len(block) / throttle)
            else:
                self.connection.sendfile(handle, start, to_send)
        if to_send < length:  # hang up mid-body, like a flaky link
            self.close_connection = True
            self.connection.shutdown(2)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, state: HubState) -> None:
        super().__init__((host, 0), _Handler)
        self.state = state

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-body is what these tests do on purpose


class FakeHub:
    """The hub on 127.0.0.1 and its CDN on 127.0.0.2, sharing one HubState; a context manager."""

    def __init__(self, *, with_cdn: bool = True) -> None:
        self.state = HubState()
        self._servers = [_Server("127.0.0.1", self.state)]
        if with_cdn:
            self._servers.append(_Server("127.0.0.2", self.state))
            self.state.cdn_base = f"http://127.0.0.2:{self._servers[1].server_address[1]}"
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self._servers]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def mirror(self) -> str:
        return self.endpoint + "/mirror"

    @property
    def cdn_host(self) -> str:
        return f"127.0.0.2:{self._servers[1].server_address[1]}" if len(self._servers) > 1 else ""

    def settings_env(self) -> dict[str, str]:
        """BENDI_* variables pointing every source at this hub (for subprocesses)."""
        return {
            "BENDI_HF_ENDPOINT": self.endpoint,
            "BENDI_MODELSCOPE_ENDPOINT": self.endpoint,
            "BENDI_MIRRORS": self.mirror,
            "BENDI_ALLOWED_HOSTS": self.cdn_host,
        }

    def __enter__(self) -> FakeHub:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":  # serve files in a separate process (the download benchmark): REPO PATH FILE...
    import sys

    with FakeHub(with_cdn=False) as standalone:
        repo, *pairs = sys.argv[1:]
        for path_in_repo, file in zip(pairs[::2], pairs[1::2], strict=True):
            standalone.state.add(repo, path_in_repo, Path(file))
        print(standalone.endpoint, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
