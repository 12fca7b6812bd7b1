"""A credential stops working on the very next request once it is revoked, its user disabled or its
password changed or reset; the session cookie is locked down (HttpOnly, SameSite=Strict); a
cookie-authenticated change needs the page's CSRF token and a same-origin Origin; keys expire.

Failed password checks here count against the client address too (waits after 10): the module makes 7."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from contextlib import closing

import httpx

from .conftest import TeamServer, WebLogin

PROBE = "/v1/models"  # any signed-in caller may read it: 200 while a credential lives, 401 after


def with_key(server: TeamServer, key: str) -> int:
    return httpx.get(server.base_url + PROBE, headers={"Authorization": f"Bearer {key}"}).status_code


def with_cookie(server: TeamServer, cookie: str) -> int:
    return httpx.get(server.base_url + PROBE, cookies={"bendi_session": cookie}).status_code


def test_revoking_ones_own_key_ends_it_at_once(team_server: TeamServer) -> None:
    member = team_server.add_user()
    web = team_server.login(member.username, member.password)
    made = web.send("POST", "/v1/auth/keys", json={"name": "laptop", "scope": "inference"})
    assert made.status_code == 201, made.text
    key, key_id = made.json()["key"], made.json()["id"]
    assert with_key(team_server, key) == 200
    # An inference key may not manage keys, not even its own (a leaked key cannot mint more).
    as_key = httpx.delete(
        team_server.base_url + f"/v1/auth/keys/{key_id}", headers={"Authorization": f"Bearer {key}"}
    )
    assert as_key.status_code == 403
    # Someone else's session cannot revoke it (nor learn it exists).
    other = team_server.add_user()
    stranger = team_server.login(other.username, other.password)
    assert stranger.send("DELETE", f"/v1/auth/keys/{key_id}").status_code == 404
    assert with_key(team_server, key) == 200

    revoked = web.send("DELETE", f"/v1/auth/keys/{key_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert with_key(team_server, key) == 401
    assert with_key(team_server, member.key) == 200  # the member's other key is untouched


def test_an_administrator_revokes_a_members_key(team_server: TeamServer) -> None:
    member = team_server.add_user()
    assert with_key(team_server, member.key) == 200
    with team_server.admin() as admin:
        assert admin.delete(f"/v1/admin/keys/{member.key_id}").status_code == 200
    answer = httpx.get(team_server.base_url + PROBE, headers=member.bearer)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"


def test_a_demoted_administrators_admin_key_loses_admin_rights_at_once(team_server: TeamServer) -> None:
    second = team_server.add_user("second-admin", role="admin", scope="admin")
    assert httpx.get(team_server.base_url + "/v1/admin/users", headers=second.bearer).status_code == 200
    with team_server.admin() as admin:
        assert admin.patch(f"/v1/admin/users/{second.id}", json={"role": "member"}).status_code == 200
    assert httpx.get(team_server.base_url + "/v1/admin/users", headers=second.bearer).status_code == 403
    assert with_key(team_server, second.key) == 200  # still a member's key


def test_deleting_a_user_ends_their_sessions_and_keys(team_server: TeamServer) -> None:
    member = team_server.add_user()
    web = team_server.login(member.username, member.password)
    with team_server.admin() as admin:
        assert admin.delete(f"/v1/admin/users/{member.id}").status_code == 200
    assert (with_cookie(team_server, web.cookie), with_key(team_server, member.key)) == (401, 401)


def test_disabling_a_user_ends_their_sessions_and_keys_for_good(team_server: TeamServer) -> None:
    member = team_server.add_user()
    web = team_server.login(member.username, member.password)
    assert (with_cookie(team_server, web.cookie), with_key(team_server, member.key)) == (200, 200)
    with team_server.admin() as admin:
        assert admin.patch(f"/v1/admin/users/{member.id}", json={"disabled": True}).status_code == 200
        assert with_cookie(team_server, web.cookie) == 401
        assert with_key(team_server, member.key) == 401
        signin = httpx.post(team_server.base_url + "/v1/auth/login",
                            json={"username": member.username, "password": member.password})  # fmt: skip
        assert signin.status_code == 401
        # Enabling the account again does not bring the old credentials back.
        assert admin.patch(f"/v1/admin/users/{member.id}", json={"disabled": False}).status_code == 200
    assert with_cookie(team_server, web.cookie) == 401
    assert with_key(team_server, member.key) == 401


def test_changing_ones_password_ends_the_other_sessions_only(team_server: TeamServer) -> None:
    member = team_server.add_user()
    here = team_server.login(member.username, member.password)
    elsewhere = team_server.login(member.username, member.password)
    new_password = "Brand-new-pass-42"
    wrong = here.send("POST", "/v1/auth/password",
                      json={"current_password": "not-it-at-all", "new_password": new_password})  # fmt: skip
    assert wrong.status_code == 400  # the session is fine; only the typed password is wrong
    assert with_cookie(team_server, elsewhere.cookie) == 200  # a failed attempt changes nothing
    changed = here.send("POST", "/v1/auth/password",
                        json={"current_password": member.password, "new_password": new_password})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert with_cookie(team_server, elsewhere.cookie) == 401
    assert with_cookie(team_server, here.cookie) == 200
    assert here.send("GET", "/v1/auth/status").json()["authenticated"] is True
    old = httpx.post(team_server.base_url + "/v1/auth/login",
                     json={"username": member.username, "password": member.password})  # fmt: skip
    assert old.status_code == 401
    team_server.login(member.username, new_password)


def test_guessing_the_current_password_through_a_session_is_throttled(team_server: TeamServer) -> None:
    """A stolen session must not be an unthrottled oracle for the account's password."""
    member = team_server.add_user()
    web = team_server.login(member.username, member.password)

    def change(current: str) -> int:
        body = {"current_password": current, "new_password": "Never-set-this-1"}
        return web.send("POST", "/v1/auth/password", json=body).status_code

    assert [change(f"Guess-{n}-abcdefgh") for n in range(5)] == [400, 400, 400, 400, 429]
    assert change(member.password) == 429  # not even the right one during the wait
    login = httpx.post(team_server.base_url + "/v1/auth/login",
                       json={"username": member.username, "password": member.password})  # fmt: skip
    assert login.status_code == 429  # the guesses count against the name wherever they are made


def test_an_administrators_password_reset_ends_sessions_and_keys(team_server: TeamServer) -> None:
    member = team_server.add_user()
    web = team_server.login(member.username, member.password)
    with team_server.admin() as admin:
        reset = admin.post(f"/v1/admin/users/{member.id}/password")
    assert reset.status_code == 200, reset.text
    one_time = reset.json()["password"]
    assert one_time and one_time != member.password
    assert with_cookie(team_server, web.cookie) == 401
    assert with_key(team_server, member.key) == 401
    # The one-time password signs in, but only to choose a new password.
    fresh = team_server.login(member.username, one_time)
    assert fresh.send("GET", "/v1/auth/status").json()["must_change_password"] is True
    assert fresh.send("GET", PROBE).status_code == 403
    assert fresh.send("POST", "/v1/auth/keys", json={"name": "sneaky"}).status_code == 403
    changed = fresh.send("POST", "/v1/auth/password",
                         json={"current_password": one_time, "new_password": "Chosen-by-me-77"})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert fresh.send("GET", PROBE).status_code == 200


def test_session_cookie_flags(team_server: TeamServer) -> None:
    member = team_server.add_user()
    web = team_server.login(member.username, member.password)
    attributes = [part.strip().lower() for part in web.set_cookie.split(";")]
    assert attributes[0].startswith("bendi_session=")
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/" in attributes
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back
    logout = web.send("POST", "/v1/auth/logout")
    assert logout.status_code == 200
    assert with_cookie(team_server, web.cookie) == 401  # logging out ends the session on the server too


def csrf_cases(server: TeamServer, web: WebLogin, other_csrf: str) -> dict[str, int]:
    """Status of POST /v1/auth/keys (a key for the signed-in user) with each kind of CSRF evidence."""
    body = {"name": "csrf-probe", "scope": "inference"}
    own_origin = server.base_url

    def token(value: str) -> int:
        return web.send(
            "POST", "/v1/auth/keys", csrf=False, json=body, headers={"X-CSRF-Token": value}
        ).status_code

    return {
        "no token": web.send("POST", "/v1/auth/keys", csrf=False, json=body).status_code,
        "empty token": token(""),
        "wrong token": token(web.csrf[:-1] + ("x" if web.csrf[-1] != "x" else "y")),
        "other session's token": token(other_csrf),
        "foreign origin": web.send(
            "POST", "/v1/auth/keys", json=body, headers={"Origin": "http://evil.example"}
        ).status_code,  # fmt: skip
        "null origin": web.send("POST", "/v1/auth/keys", json=body, headers={"Origin": "null"}).status_code,
        "right token": web.send("POST", "/v1/auth/keys", json=body).status_code,
        "right token, own origin": web.send(
            "POST", "/v1/auth/keys", json=body, headers={"Origin": own_origin}
        ).status_code,  # fmt: skip
    }


def test_cookie_authenticated_changes_need_the_csrf_token_and_own_origin(team_server: TeamServer) -> None:
    member = team_server.add_user()
    web = team_server.login(member.username, member.password)
    other = team_server.login(member.username, member.password)
    cases = csrf_cases(team_server, web, other.csrf)
    assert cases == {"no token": 403, "empty token": 403, "wrong token": 403, "other session's token": 403, "foreign origin": 403,
                     "null origin": 403, "right token": 201, "right token, own origin": 201}  # fmt: skip
    keys = web.send("GET", "/v1/auth/keys").json()["data"]
    assert sorted(k["name"] for k in keys) == ["csrf-probe", "csrf-probe", "k"]  # only the two allowed ones
    # DELETE is a state change as well.
    assert web.send("DELETE", f"/v1/auth/keys/{member.key_id}", csrf=False).status_code == 403
    assert with_key(team_server, member.key) == 200


def test_idle_and_old_sessions_expire_on_the_server(team_server: TeamServer) -> None:
    """The server, not the browser, ends sessions: past the inactivity limit (480 min) or the absolute
    one (168 h), a cookie is refused. The session's clock is set back in the database the server reads."""
    member = team_server.add_user()
    idle, old = (team_server.login(member.username, member.password) for _ in range(2))
    assert (with_cookie(team_server, idle.cookie), with_cookie(team_server, old.cookie)) == (200, 200)
    now = time.time()
    with closing(sqlite3.connect(team_server.home / "access.sqlite3", timeout=10)) as db, db:
        db.execute(
            "UPDATE sessions SET last_seen_at = ? WHERE id = ?", (now - 481 * 60, session_id(idle.cookie))
        )
        db.execute(
            "UPDATE sessions SET created_at = ? WHERE id = ?", (now - 169 * 3600, session_id(old.cookie))
        )
    assert with_cookie(team_server, idle.cookie) == 401
    assert with_cookie(team_server, old.cookie) == 401


def session_id(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def test_an_expired_key_is_refused(team_server: TeamServer) -> None:
    member = team_server.add_user()
    web = team_server.login(member.username, member.password)
    made = web.send("POST", "/v1/auth/keys", json={"name": "short", "expires_days": 0.5})
    assert made.status_code == 201, made.text
    key, key_id = made.json()["key"], made.json()["id"]
    assert abs(made.json()["expires_at"] - made.json()["created_at"] - 12 * 3600) < 1
    assert with_key(team_server, key) == 200
    # Twelve hours pass: the key's deadline is moved into the past in the database the server reads.
    with closing(sqlite3.connect(team_server.home / "access.sqlite3", timeout=10)) as db, db:
        db.execute("UPDATE api_keys SET expires_at = ? WHERE id = ?", (time.time() - 1, key_id))
    answer = httpx.get(team_server.base_url + PROBE, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"
    listed = {k["id"]: k for k in web.send("GET", "/v1/auth/keys").json()["data"]}
    assert listed[key_id]["active"] is False
