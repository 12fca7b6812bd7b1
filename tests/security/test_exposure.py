"""R1, secure exposure: by default bendi listens on loopback only; on a network address it never
serves without authentication: an organization in team mode starts as it is, and a first public
start with neither accounts nor a key switches to team mode with a one-time administrator password."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from server_process import ServerProcess, free_port

from .conftest import ADMIN_NAME, init_team_home


@pytest.fixture()
def started() -> Iterator[list[ServerProcess]]:
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        server.stop()


def start(servers: list[ServerProcess], home: Path, *args: str) -> ServerProcess:
    server = ServerProcess(home, free_port(), {}, args)
    servers.append(server)
    server.wait_ready(timeout_s=90)
    return server


def listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket of the process and its children."""
    process = psutil.Process(pid)
    sockets = []
    for member in [process, *process.children(recursive=True)]:
        for conn in member.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                sockets.append((conn.laddr.ip, conn.laddr.port))
    return sockets


def test_default_server_listens_on_loopback_only(tmp_path: Path, started: list[ServerProcess]) -> None:
    server = start(started, tmp_path)
    sockets = listening(server.proc.pid)
    assert ("127.0.0.1", server.port) in sockets
    assert all(ipaddress.ip_address(address).is_loopback for address, _ in sockets), sockets


def test_first_public_start_switches_to_team_mode(tmp_path: Path, started: list[ServerProcess]) -> None:
    server = start(started, tmp_path, "--host", "0.0.0.0")
    assert ("0.0.0.0", server.port) in listening(server.proc.pid)
    status = httpx.get(server.base_url + "/v1/auth/status").json()
    assert status["mode"] == "team" and status["authenticated"] is False
    assert httpx.get(server.base_url + "/v1/models").status_code == 401
    assert httpx.post(server.base_url + "/v1/chat/completions", json={"messages": []}).status_code == 401
    # The operator's terminal got the first administrator's one-time password; it works once, to change it.
    found = re.search(r"One-time password: (\S+)", server.log())
    assert found, server.log()
    login = httpx.post(server.base_url + "/v1/auth/login", json={"username": "admin", "password": found[1]})
    assert login.status_code == 200 and login.json()["must_change_password"] is True
    cookies = {"bendi_session": login.cookies["bendi_session"]}
    assert httpx.get(server.base_url + "/v1/admin/users", cookies=cookies).status_code == 403


def test_public_start_in_team_mode_serves_only_signed_in_callers(
    tmp_path: Path, started: list[ServerProcess]
) -> None:
    admin_key = init_team_home(tmp_path)
    server = start(started, tmp_path, "--host", "0.0.0.0")
    assert "One-time password" not in server.log()  # the organization's administrator stays the only one
    assert httpx.get(server.base_url + "/v1/models").status_code == 401
    users = httpx.get(server.base_url + "/v1/admin/users", headers={"Authorization": f"Bearer {admin_key}"})
    assert users.status_code == 200
    assert [u["username"] for u in users.json()["data"]] == [ADMIN_NAME]


def test_public_start_with_a_legacy_key_needs_that_key(tmp_path: Path, started: list[ServerProcess]) -> None:
    server = start(started, tmp_path, "--host", "0.0.0.0", "--api-key", "legacy-secret-key-1")
    assert "One-time password" not in server.log()  # a key is authentication enough: no team mode
    assert httpx.get(server.base_url + "/v1/models").status_code == 401
    ok = httpx.get(server.base_url + "/v1/models", headers={"Authorization": "Bearer legacy-secret-key-1"})
    assert ok.status_code == 200
    status = httpx.get(
        server.base_url + "/v1/auth/status", headers={"Authorization": "Bearer legacy-secret-key-1"}
    )
    assert status.json()["mode"] == "single"
