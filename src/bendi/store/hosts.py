"""The host allowlist and an HTTP client that enforces it on every request and every redirect."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from bendi.core.errors import DownloadError
from bendi.core.settings import Settings
from bendi.store.body import Body, open_one, ssl_context

# Where Hugging Face and ModelScope redirect downloads to (their CDNs / object storage).
KNOWN_CDN_DOMAINS = (
    "huggingface.co",  # cdn-lfs.huggingface.co and the hub itself
    "hf.co",  # cdn-lfs.hf.co, cdn-lfs-us-1.hf.co, cas-bridge.xethub.hf.co
    "modelscope.cn",
    "modelscope.oss-cn-beijing.aliyuncs.com",
    "modelscope.oss-cn-hangzhou.aliyuncs.com",
)
MAX_REDIRECTS = 8
USER_AGENT = "bendi-store/0.1"

_Answer = TypeVar("_Answer", httpx.Response, Body)


class DisallowedHostError(DownloadError):
    code = "host_not_allowed"


def _netloc(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class HostPolicy:
    """Which hosts bendi may contact: configured endpoints and mirrors, hub CDNs, allowed_hosts.

    Endpoint entries match host and port exactly; `allowed_hosts` entries are `host` (any port) or
    `host:port`; CDN domains match themselves and their subdomains over HTTPS only.
    """

    def __init__(self, settings: Settings) -> None:
        self._exact: set[tuple[str, int | None]] = set()
        self._any_port: set[str] = set()
        for url in (settings.hf_endpoint, settings.modelscope_endpoint, *settings.mirrors):
            scheme, host, port = _netloc(url)
            self._exact.add((host, port or (443 if scheme == "https" else 80)))
        for entry in settings.allowed_hosts:
            entry = entry.strip().lower()
            host, sep, port_text = entry.rpartition(":")
            if sep and port_text.isdigit():
                self._exact.add((host, int(port_text)))
            else:
                self._any_port.add(entry)

    def allows(self, url: str) -> bool:
        scheme, host, port = _netloc(url)
        if scheme not in ("http", "https") or not host:
            return False
        port = port or (443 if scheme == "https" else 80)
        if (host, port) in self._exact or host in self._any_port:
            return True
        return scheme == "https" and any(host == d or host.endswith("." + d) for d in KNOWN_CDN_DOMAINS)

    def check(self, url: str, *, redirected_from: str | None = None) -> None:
        if self.allows(url):
            return
        host = urlsplit(url).netloc or url
        via = f" (a redirect from {urlsplit(redirected_from).netloc})" if redirected_from else ""
        raise DisallowedHostError(
            f"Refusing to contact {host}{via}: it is not an allowed download host. If you trust it, add it "
            "to allowed_hosts in config.toml (or BENDI_ALLOWED_HOSTS)."
        )


class GuardedClient:
    """Requests with redirects followed by hand, each hop checked against the HostPolicy.

    Metadata (HEAD, JSON listings) goes through httpx; model bytes through `open_body` (body.py).
    """

    def __init__(self, policy: HostPolicy, *, timeout_s: float = 30.0, read_timeout_s: float = 60.0) -> None:
        self.policy = policy
        self.timeout_s, self.read_timeout_s = timeout_s, read_timeout_s
        self._client = httpx.Client(
            follow_redirects=False,
            timeout=httpx.Timeout(timeout_s, read=read_timeout_s),
            headers={"User-Agent": USER_AGENT},
            verify=ssl_context(),
            trust_env=False,  # no proxy we did not configure: nothing but allowed hosts is contacted
        )

    def __enter__(self) -> GuardedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def send(
        self, method: str, url: str, headers: Mapping[str, str] | None = None, *, follow: bool = True
    ) -> httpx.Response:
        """Send and return a *streaming* response (caller closes it); `response.url` is the final URL."""

        def one(hop_url: str) -> httpx.Response:
            request = self._client.build_request(method, hop_url, headers=dict(headers or {}))
            try:
                return self._client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise DownloadError(
                    f"Cannot reach {urlsplit(hop_url).netloc}: {exc}. Check the network."
                ) from exc

        return self._follow(url, one, follow)

    def open_body(self, url: str, headers: Mapping[str, str]) -> Body:
        """GET a file's bytes for reading into buffers (caller closes it), redirects checked."""

        def one(hop_url: str) -> Body:
            return open_one(hop_url, headers, connect_timeout_s=self.timeout_s,
                            read_timeout_s=self.read_timeout_s, user_agent=USER_AGENT)  # fmt: skip

        return self._follow(url, one, True)

    def _follow(self, url: str, one: Callable[[str], _Answer], follow: bool) -> _Answer:
        self.policy.check(url)
        previous: str | None = None
        for _ in range(MAX_REDIRECTS + 1):
            if previous is not None:
                self.policy.check(url, redirected_from=previous)
            response = one(url)
            if not (follow and response.is_redirect):
                return response
            location = response.headers.get("location", "")
            response.close()
            previous, url = url, urljoin(url, location)
        raise DownloadError(f"Too many redirects starting at {url}.")

    def get_json(self, url: str) -> object:
        response = self.send("GET", url)
        try:
            response.read()
            if response.status_code != 200:
                raise DownloadError(f"{urlsplit(url).netloc} answered HTTP {response.status_code} for {url}.")
            return response.json()
        except ValueError as exc:
            raise DownloadError(f"{urlsplit(url).netloc} sent invalid JSON for {url}.") from exc
        finally:
            response.close()
