"""LDAP sign-in through bendi's HTTP API against a real slapd: directory users sign in, their groups
become departments and roles, department grants open knowledge bases to them, local accounts keep
working beside them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from access.slapd import SlapdServer
from bendi.access.scope import KbScope
from bendi.core.settings import load_settings
from bendi.gateway.app import create_app
from bendi.services import build_services


@pytest.fixture(scope="module")
def app_with_ldap(slapd_server: SlapdServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home: Path = tmp_path_factory.mktemp("ldap-home")
    settings = load_settings(
        home=home, threads=2, ldap_url=slapd_server.url, ldap_user_dn=f"uid={{username}},{slapd_server.people_dn}",
        ldap_group_base=slapd_server.groups_dn, ldap_group_departments=("tongfeng=通风科", "jidian=机电科"),
        ldap_admin_groups=("bendi-admins",), ldap_kb_editor_groups=("kb-editors",),
    )  # fmt: skip
    services = build_services(settings)
    services.init_team("localroot", "local-root-password")
    services.knowledge.create("通风规程", "ventilation rules")
    yield create_app(services), services


def _login(app: Any, username: str, password: str) -> tuple[TestClient, Any]:
    client = TestClient(app, base_url="http://127.0.0.1")
    return client, client.post("/v1/auth/login", json={"username": username, "password": password})


def test_directory_user_signs_in_with_groups_as_departments_and_role(app_with_ldap: Any) -> None:
    app, _ = app_with_ldap
    client, response = _login(app, "zhangwei", "Zhang-密码-2024")
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user["source"] == "ldap" and user["role"] == "admin" and user["display_name"] == "张伟"
    assert [d["name"] for d in user["departments"]] == ["通风科"]
    assert client.get("/v1/admin/users").status_code == 200  # an admin through the directory group
    _, editor = _login(app, "lina", "lina-pass-5678")
    assert editor.json()["user"]["role"] == "kb-editor"


def test_wrong_directory_password_and_unknown_user_read_alike(app_with_ldap: Any) -> None:
    app, _ = app_with_ldap
    _, wrong = _login(app, "wangfang", "not-her-password")
    _, unknown = _login(app, "nobody-here", "whatever-password")
    _, empty = _login(app, "bob", " ")
    assert wrong.status_code == unknown.status_code == empty.status_code == 401
    assert wrong.json() == unknown.json() == empty.json()


def test_a_department_grant_reaches_directory_users(app_with_ldap: Any) -> None:
    app, services = app_with_ldap
    kb = services.knowledge.names(KbScope.everything())[0]
    member, response = _login(app, "wangfang", "wangfang-pass-9")
    assert response.status_code == 200
    assert member.get("/v1/knowledge-bases").json()["data"] == []
    tongfeng = services.access.accounts.department("通风科")
    services.access.grants.grant(kb, "department", tongfeng.id, "read")
    assert [b["name"] for b in member.get("/v1/knowledge-bases").json()["data"]] == [kb]
    _, bob = _login(app, "bob", "bob-pass-1234")  # in no group: no departments, member role
    assert bob.json()["user"]["role"] == "member" and bob.json()["user"]["departments"] == []


def test_local_accounts_keep_working_beside_ldap(app_with_ldap: Any) -> None:
    app, _ = app_with_ldap
    _, response = _login(app, "localroot", "local-root-password")
    assert response.status_code == 200 and response.json()["user"]["source"] == "local"
    status = TestClient(app, base_url="http://127.0.0.1").get("/v1/auth/status").json()
    assert status["ldap"] is True and status["mode"] == "team"
