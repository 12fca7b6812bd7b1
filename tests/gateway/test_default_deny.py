"""Default deny: every route of the app is in the one allowlist table (access/route_rules.py), and a
walk over all of them with no credentials, a member's key and an admin's key gets exactly what the
table says. A new route without a decision fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bendi.access.route_rules import ROUTE_RULES, rule_for
from bendi.core.settings import load_settings
from bendi.gateway.app import create_app
from bendi.gateway.auth import flat_routes
from bendi.services import build_services


@pytest.fixture(scope="module")
def team_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    home = tmp_path_factory.mktemp("deny-home")
    services = build_services(load_settings(home=home, threads=2))
    admin, _ = services.access.init_team("root", "root-password-1")
    member, _ = services.access.accounts.create_user("member", password="member-password-1")
    keys = {
        "admin": services.access.keys.create(admin, name="admin", scope="admin")[0],
        "member": services.access.keys.create(member, name="member", scope="kb:write")[0],
        "member-inference": services.access.keys.create(member, name="reader", scope="inference")[0],
    }
    app = create_app(services)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, keys


def _routes(client: TestClient) -> list[tuple[str, str]]:
    found = []
    for route in flat_routes(client.app.routes):  # type: ignore[attr-defined]
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD" or "GET" not in route.methods:
                found.append((method, route.path))
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def test_every_route_has_exactly_one_decision(team_app: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = team_app
    routes = {(m, p) for m, p in _routes(client)}
    undecided = sorted(r for r in routes if rule_for(*r) is None)
    assert not undecided, f"routes without an access rule in access/route_rules.py: {undecided}"
    stale = sorted(set(ROUTE_RULES) - {("GET" if m == "HEAD" else m, p) for m, p in routes})
    assert not stale, f"rules for routes that do not exist: {stale}"


def test_openapi_document_lists_no_route_without_a_rule(team_app: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = team_app
    document = client.get("/openapi.json", headers={"Authorization": f"Bearer {keys['admin']}"}).json()
    decided = {(m, re.sub(r":\w+}", "}", p)) for m, p in ROUTE_RULES}  # /{model_id:path} is /{model_id} there
    for path, operations in document["paths"].items():
        for method in operations:
            if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                assert (method.upper(), path) in decided, (method, path)


def _call(client: TestClient, method: str, path: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, _concrete(path), headers=headers, json=body).status_code


def test_walk_every_route_as_nobody_member_and_admin(team_app: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = team_app
    wrong: list[str] = []
    for method, path in _routes(client):
        rule = rule_for(method, path)
        if path == "/v1/auth/logout":
            continue  # would end nothing here, but keep the walk free of side effects on sessions
        nobody = _call(client, method, path, None)
        if rule == "public":
            if nobody in (401, 403) and path != "/v1/auth/login":
                wrong.append(f"{method} {path}: public but {nobody} without credentials")
        elif nobody != 401:
            wrong.append(f"{method} {path}: {nobody} without credentials, want 401")
        member = _call(client, method, path, keys["member"])
        member_refused = rule in ("admin", "account")
        if member_refused != (member == 403):
            wrong.append(f"{method} {path} ({rule}): member key got {member}")
        reader = _call(client, method, path, keys["member-inference"])
        reader_refused = rule in ("admin", "account", "kb:write")
        if reader_refused != (reader == 403):
            wrong.append(f"{method} {path} ({rule}): inference key got {reader}")
        admin = _call(client, method, path, keys["admin"])
        if admin in (401, 403):
            wrong.append(f"{method} {path}: admin key got {admin}")
    assert not wrong, "\n".join(wrong)


def test_unknown_paths_need_no_credentials_to_be_404(team_app: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = team_app
    response = client.get("/v1/no-such-thing")
    assert response.status_code in (401, 404)
    assert client.get("/health").status_code == 200


def test_single_user_mode_needs_no_login(tmp_path: Path) -> None:
    services = build_services(load_settings(home=tmp_path, threads=2))
    with TestClient(create_app(services), base_url="http://127.0.0.1") as client:
        assert client.get("/v1/auth/status").json()["mode"] == "single"
        assert client.get("/v1/knowledge-bases").status_code == 200
        assert client.get("/v1/conversations").status_code == 200
