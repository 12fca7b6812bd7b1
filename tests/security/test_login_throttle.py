"""Password guessing: one answer for every kind of wrong sign-in, a growing wait (429 + Retry-After)
per username that even the right password cannot skip, and an audit trail of the failures that never
holds the passwords tried.

Every failure here also counts against the client address (127.0.0.1), which waits after 10; the
module makes 9, so that other usernames keep working, as they must for a shared address.
"""

from __future__ import annotations

import time

import httpx

from bendi.access.accounts import username_key

from .conftest import Member, TeamServer

WRONG_PASSWORDS = [f"Guess-number-{n}-xyzzy" for n in range(8)]


def login(server: TeamServer, username: str, password: str) -> httpx.Response:
    return httpx.post(server.base_url + "/v1/auth/login", json={"username": username, "password": password})


def test_unknown_user_wrong_password_and_disabled_user_get_the_same_answer(team_server: TeamServer) -> None:
    known = team_server.add_user("known")
    disabled = team_server.add_user("gone")
    with team_server.admin() as admin:
        assert admin.patch(f"/v1/admin/users/{disabled.id}", json={"disabled": True}).status_code == 200
    answers = [
        login(team_server, "nobody-by-this-name", WRONG_PASSWORDS[0]),
        login(team_server, known.username, WRONG_PASSWORDS[1]),
        login(team_server, disabled.username, disabled.password),  # the right password, but disabled
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert answers[0].json()["error"]["message"] == "Wrong username or password."
    assert "set-cookie" not in answers[2].headers


def throttled(answer: httpx.Response) -> int:
    """Retry-After of a 429 (an integer number of seconds, as the header must be)."""
    assert answer.status_code == 429, answer.text
    retry_after = answer.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1, retry_after
    assert answer.json()["error"]["code"] == "rate_limit_exceeded"
    return int(retry_after)


def test_repeated_failures_lock_the_username_even_for_the_right_password(team_server: TeamServer) -> None:
    carol: Member = team_server.add_user("carol")
    for password in WRONG_PASSWORDS[2:6]:  # three free mistakes, then a 2 s wait after the fourth
        assert login(team_server, carol.username, password).status_code == 401
    time.sleep(0.7)  # part of the wait has passed: ~1.3 s are left, and Retry-After must not say 1
    first_wait = throttled(login(team_server, carol.username, WRONG_PASSWORDS[6]))
    time.sleep(first_wait + 0.05)
    # A client that waits exactly Retry-After is heard (the guess is wrong), and the next wait is longer.
    assert login(team_server, carol.username, WRONG_PASSWORDS[7]).status_code == 401
    second_wait = throttled(login(team_server, carol.username, carol.password))
    assert second_wait > first_wait
    # Neither the right password nor another spelling of the name gets through during the wait.
    throttled(login(team_server, carol.username.upper(), carol.password))
    throttled(login(team_server, f"  {carol.username}  ", carol.password))
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in carol.username)
    throttled(login(team_server, fullwidth, carol.password))  # the same name after NFKC
    # Someone else signs in normally meanwhile (from the same address).
    dave = team_server.add_user("dave")
    assert login(team_server, dave.username, dave.password).status_code == 200
    # Every attempt is in the audit log, the refused ones with their 429.
    statuses = [r["status"] for r in team_server.audit(action="auth.login_failed")
                if username_key(r["detail"].get("attempted_username", "")) == carol.username]  # fmt: skip
    assert sorted(statuses) == [401] * 5 + [429] * 5


def test_failed_sign_ins_are_audited_without_the_passwords(team_server: TeamServer) -> None:
    erin = team_server.add_user("erin")
    canary = "Canary-password-Q7ZK-not-for-logs"
    assert login(team_server, erin.username, canary).status_code == 401
    assert login(team_server, erin.username, erin.password).status_code == 200
    failed = [r for r in team_server.audit(action="auth.login_failed")
              if r["detail"].get("attempted_username") == erin.username]  # fmt: skip
    assert len(failed) == 1
    assert failed[0]["status"] == 401 and failed[0]["route"] == "/v1/auth/login"
    assert failed[0]["actor"] == "" and failed[0]["user_id"] is None
    assert failed[0]["address"] == "127.0.0.1"
    assert team_server.audit(action="auth.login", actor=erin.username), "the successful sign-in is audited"
    everything = repr(team_server.audit())
    assert canary not in everything and erin.password not in everything
    for password in WRONG_PASSWORDS:
        assert password not in everything
