"""Team-mode servers for the security tests: a real `bendi serve` whose first administrator (and an
admin-scope key) exist before it starts, plus helpers that make members through the admin API."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import team_home
from server_process import ServerProcess, free_port

MODEL = "smollm2:135m"
ADMIN_NAME = "boss"
ADMIN_PASSWORD = "Adm1n-pass-for-tests"
MEMBER_PASSWORD = "Member-pass-0001"


@dataclass(frozen=True)
class Member:
    """A user made through POST /v1/admin/users, with one API key made through POST /v1/admin/keys."""

    id: str
    username: str
    password: str
    key: str
    key_id: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class WebLogin:
    """A signed-in browser: the cookie jar holds `bendi_session`; `csrf` goes in X-CSRF-Token."""

    client: httpx.Client
    csrf: str
    cookie: str
    set_cookie: str  # the raw Set-Cookie header of the login response

    def send(self, method: str, path: str, *, csrf: bool = True, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return self.client.request(method, path, headers=headers, **kwargs)


def init_team_home(home: Path, *, admin_password: str = ADMIN_PASSWORD) -> str:
    """Switch `home` to team mode with administrator ADMIN_NAME; returns an admin-scope API key."""
    return team_home.init_team_home(home, ADMIN_NAME, admin_password)


@dataclass
class TeamServer:
    process: ServerProcess
    home: Path
    admin_key: str
    _names: Iterator[int] = field(default_factory=itertools.count)
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.process.base_url

    def client(self, **kwargs: Any) -> httpx.Client:
        made = httpx.Client(base_url=self.base_url, timeout=60.0, **kwargs)
        self._clients.append(made)
        return made

    def admin(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {self.admin_key}"})

    def add_user(self, prefix: str = "member", *, role: str = "member", scope: str = "inference",
                 password: str = MEMBER_PASSWORD, username: str | None = None) -> Member:  # fmt: skip
        name = username or f"{prefix}{next(self._names)}"
        with self.admin() as admin:
            made = admin.post("/v1/admin/users", json={"username": name, "password": password, "role": role})
            assert made.status_code == 201, made.text
            user = made.json()["user"]
            key = admin.post("/v1/admin/keys", json={"user_id": user["id"], "name": "k", "scope": scope})
            assert key.status_code == 201, key.text
        return Member(user["id"], user["username"], password, key.json()["key"], key.json()["id"])

    def login(self, username: str, password: str) -> WebLogin:
        browser = self.client()
        answer = browser.post("/v1/auth/login", json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        cookie = browser.cookies.get("bendi_session")
        assert cookie, answer.headers
        return WebLogin(browser, answer.json()["csrf_token"], cookie, answer.headers["set-cookie"])

    def audit(self, **query: str) -> list[dict[str, Any]]:
        with self.admin() as admin:
            answer = admin.get("/v1/admin/audit", params={"since": "1d", "limit": "1000", **query})
        assert answer.status_code == 200, answer.text
        records: list[dict[str, Any]] = answer.json()["data"]
        return records

    def close_clients(self) -> None:
        for made in self._clients:
            made.close()


@pytest.fixture(scope="module")
def team_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., TeamServer]]:
    """factory(args=(...), env={...}) -> a started team-mode server with its own BENDI_HOME."""
    servers: list[TeamServer] = []

    def start(args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> TeamServer:
        home = tmp_path_factory.mktemp("bendi-team")
        admin_key = init_team_home(home)
        extra = {"BENDI_CONTEXT_TOKENS": "1024", **(env or {})}
        process = ServerProcess(home, free_port(), extra, args)
        server = TeamServer(process, home, admin_key)
        servers.append(server)
        process.wait_ready(timeout_s=90)
        return server

    yield start
    for server in servers:
        server.close_clients()
        server.process.stop()


@pytest.fixture(scope="module")
def team_server(team_server_factory: Callable[..., TeamServer]) -> TeamServer:
    """The module's one team-mode server, without a model (for tests of credentials alone)."""
    return team_server_factory()


@pytest.fixture(scope="module")
def model_server(team_server_factory: Callable[..., TeamServer]) -> TeamServer:
    """The module's one team-mode server with the bundled model loaded at start."""
    return team_server_factory(args=("--model", MODEL))
