"""Download sources: where a repo file lives on Hugging Face, ModelScope or a plain mirror.

Each source turns (repo, path in repo) into a RemoteFile: the URL to GET, its size, and the
SHA-256 the hub publishes (Hugging Face: X-Linked-Etag of LFS files; ModelScope: Sha256 in the
files listing), so the download can be verified against the publisher, not just itself.
Hugging Face and ModelScope also list a whole repository (RepoEntry) for HF-format pulls; a plain
mirror has no listing, so those pulls take the file list from the catalog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from bendi.core.errors import DownloadError
from bendi.core.settings import Settings
from bendi.store.hosts import GuardedClient

SOURCE_NAMES = ("huggingface", "modelscope", "mirror")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
MAX_LISTING_PAGES = 50  # 50 pages of 1,000 entries: far more than any model repository holds


class RemoteNotFoundError(DownloadError):
    http_status = 404
    code = "remote_file_not_found"


@dataclass(frozen=True)
class RemoteFile:
    source: str
    url: str
    path_in_repo: str
    size_bytes: int | None
    sha256: str | None  # 64 lower-case hex, as published by the source
    etag: str | None


@dataclass(frozen=True)
class RepoEntry:
    """One file in a hub's listing of a repository."""

    path: str
    size_bytes: int | None
    sha256: str | None  # HF: the LFS oid (large files); ModelScope: every file
    git_sha1: str | None = None  # HF: the git blob id of a small (non-LFS) file


class Source(Protocol):
    name: str

    def locate(self, http: GuardedClient, repo: str, path_in_repo: str) -> RemoteFile: ...


def _clean_etag(raw: str | None) -> str | None:
    if not raw:
        return None
    return raw.removeprefix("W/").strip('"') or None


def _sha(raw: str | None) -> str | None:
    raw = (raw or "").lower()
    return raw if _SHA256.match(raw) else None


def _size(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None


def _status_error(source: str, status: int, what: str) -> DownloadError:
    if status == 404:
        return RemoteNotFoundError(
            f"{what} was not found on {source} (HTTP 404). Check the repository and file name."
        )
    if status in (401, 403):
        return DownloadError(
            f"{source} refused access to {what} (HTTP {status}); the repository may be gated."
        )
    return DownloadError(f"{source} answered HTTP {status} for {what}. Try again later or another --source.")


def _listing(http: GuardedClient, source: str, url: str, repo: str) -> httpx.Response:
    """A repository's file listing, read whole; any answer but 200 is the error for that status."""
    response = http.send("GET", url)
    try:
        response.read()
    finally:
        response.close()
    if response.status_code != 200:
        raise _status_error(source, response.status_code, f"the file list of {repo}")
    return response


class HuggingFace:
    name = "huggingface"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")

    def url(self, repo: str, path_in_repo: str) -> str:
        return f"{self.endpoint}/{repo}/resolve/main/{quote(path_in_repo)}"

    def locate(self, http: GuardedClient, repo: str, path_in_repo: str) -> RemoteFile:
        url = self.url(repo, path_in_repo)
        # The first answer (a 302 to the CDN for LFS files) carries the size and hash headers.
        response = http.send("HEAD", url, follow=False)
        response.close()
        if response.is_redirect or response.status_code == 200:
            linked_etag = _clean_etag(response.headers.get("x-linked-etag"))
            size = _size(response.headers.get("x-linked-size"))
            if size is None and response.status_code == 200:
                size = _size(response.headers.get("content-length"))
            etag = linked_etag or _clean_etag(response.headers.get("etag"))
            return RemoteFile(self.name, url, path_in_repo, size, _sha(linked_etag), etag)
        raise _status_error(self.name, response.status_code, f"{repo}/{path_in_repo}")

    def list_repo(self, http: GuardedClient, repo: str) -> list[RepoEntry]:
        """Every file of the repository's main branch, with sizes and published hashes (paged)."""
        url: str | None = f"{self.endpoint}/api/models/{repo}/tree/main?recursive=true"
        entries: list[RepoEntry] = []
        for _ in range(MAX_LISTING_PAGES):
            if url is None:
                return entries
            response = _listing(http, self.name, url, repo)
            try:
                page = response.json()
                assert isinstance(page, list)
            except (ValueError, AssertionError) as exc:
                raise DownloadError(f"Hugging Face sent an unexpected file list for {repo}.") from exc
            entries.extend(
                _hf_entry(item) for item in page if isinstance(item, dict) and item.get("type") == "file"
            )
            found = _NEXT_LINK.search(response.headers.get("link", ""))
            url = found.group(1) if found else None
        raise DownloadError(f"The file list of {repo} has more than {MAX_LISTING_PAGES} pages; refusing it.")

    def remote(self, repo: str, entry: RepoEntry) -> RemoteFile:
        return RemoteFile(
            self.name, self.url(repo, entry.path), entry.path, entry.size_bytes, entry.sha256, None
        )


class ModelScope:
    name = "modelscope"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._listings: dict[str, list[dict[str, object]]] = {}

    def url(self, repo: str, path_in_repo: str) -> str:
        return f"{self.endpoint}/api/v1/models/{repo}/repo?Revision=master&FilePath={quote(path_in_repo)}"

    def _files(self, http: GuardedClient, repo: str) -> list[dict[str, object]]:
        if repo not in self._listings:
            listing_url = f"{self.endpoint}/api/v1/models/{repo}/repo/files?Revision=master&Recursive=true"
            response = _listing(http, self.name, listing_url, repo)
            try:
                files = response.json()["Data"]["Files"]
                assert isinstance(files, list)
            except (ValueError, KeyError, TypeError, AssertionError) as exc:
                raise DownloadError(f"ModelScope sent an unexpected file list for {repo}.") from exc
            self._listings[repo] = [f for f in files if isinstance(f, dict)]
        return self._listings[repo]

    def locate(self, http: GuardedClient, repo: str, path_in_repo: str) -> RemoteFile:
        for entry in self._files(http, repo):
            if entry.get("Path") == path_in_repo:
                size = entry.get("Size")
                sha = entry.get("Sha256")
                return RemoteFile(
                    self.name,
                    self.url(repo, path_in_repo),
                    path_in_repo,
                    size if isinstance(size, int) else None,
                    _sha(sha if isinstance(sha, str) else None),
                    None,
                )
        raise RemoteNotFoundError(f"{repo}/{path_in_repo} was not found on ModelScope. Check the file name.")

    def list_repo(self, http: GuardedClient, repo: str) -> list[RepoEntry]:
        entries = []
        for entry in self._files(http, repo):
            path, size, sha = entry.get("Path"), entry.get("Size"), entry.get("Sha256")
            if entry.get("Type", "blob") != "blob" or not isinstance(path, str):
                continue
            entries.append(
                RepoEntry(
                    path, size if isinstance(size, int) else None, _sha(sha if isinstance(sha, str) else None)
                )
            )
        return entries

    def remote(self, repo: str, entry: RepoEntry) -> RemoteFile:
        return RemoteFile(
            self.name, self.url(repo, entry.path), entry.path, entry.size_bytes, entry.sha256, None
        )


class Mirror:
    """A plain HTTP(S) server laid out as {base}/{owner}/{repo}/{path}; hash from headers if any."""

    name = "mirror"

    def __init__(self, bases: tuple[str, ...]) -> None:
        self.bases = tuple(b.rstrip("/") for b in bases)

    def locate(self, http: GuardedClient, repo: str, path_in_repo: str) -> RemoteFile:
        if not self.bases:
            raise DownloadError("No mirror is configured; set `mirrors` in config.toml or BENDI_MIRRORS.")
        last: DownloadError | None = None
        for base in self.bases:
            url = f"{base}/{repo}/{quote(path_in_repo)}"
            try:
                response = http.send("HEAD", url)
                response.close()
            except DownloadError as exc:
                last = exc
                continue
            if response.status_code == 200:
                linked = _clean_etag(response.headers.get("x-linked-etag"))
                etag = linked or _clean_etag(response.headers.get("etag"))
                size = _size(response.headers.get("x-linked-size") or response.headers.get("content-length"))
                return RemoteFile(self.name, url, path_in_repo, size, _sha(linked) or _sha(etag), etag)
            last = _status_error(f"mirror {base}", response.status_code, f"{repo}/{path_in_repo}")
        assert last is not None
        raise last


def _hf_entry(item: dict[str, Any]) -> RepoEntry:
    lfs = item.get("lfs")
    size = item.get("size")
    if isinstance(lfs, dict):
        lfs_size, oid = lfs.get("size"), lfs.get("oid")
        return RepoEntry(
            str(item.get("path", "")),
            lfs_size if isinstance(lfs_size, int) else size if isinstance(size, int) else None,
            _sha(oid if isinstance(oid, str) else None),
        )
    oid = str(item.get("oid", "")).lower()
    return RepoEntry(
        str(item.get("path", "")),
        size if isinstance(size, int) else None,
        None,
        oid if _SHA1.match(oid) else None,
    )


def sources_for(settings: Settings, choice: str) -> list[Source]:
    """The sources to try, in order: one named source, or settings.source_order for 'auto'."""
    built: dict[str, Source] = {
        "huggingface": HuggingFace(settings.hf_endpoint),
        "modelscope": ModelScope(settings.modelscope_endpoint),
        "mirror": Mirror(settings.mirrors),
    }
    names = list(settings.source_order) if choice == "auto" else [choice]
    unknown = [n for n in names if n not in built]
    if unknown:
        raise DownloadError(
            f"Unknown download source {unknown[0]!r}; use one of {', '.join(SOURCE_NAMES)} or auto."
        )
    if choice == "auto" and not settings.mirrors:
        names = [n for n in names if n != "mirror"]
    return [built[n] for n in names]
