"""The policy decides knowledge-base access exactly as the access lists say (property test), and
every key scope and role gets what the route table promises."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bendi.access.control import AccessControl
from bendi.access.principal import Principal
from bendi.core.errors import AuthenticationError, ForbiddenError
from bendi.core.paths import DataPaths
from bendi.core.settings import load_settings

KBS = ("kb0", "kb1", "kb2", "kb3")
USERS = ("u0", "u1", "u2")
DEPTS = ("d0", "d1")


@pytest.fixture()
def access(tmp_path: Path) -> AccessControl:
    settings = load_settings(home=tmp_path, min_password_chars=4)
    control = AccessControl(settings, DataPaths(tmp_path).ensure())
    control.init_team("root", "root-password")
    return control


def _principal(access: AccessControl, username: str, scopes: frozenset[str] | None = None) -> Principal:
    user = access.accounts.find_user(username)
    from bendi.access.authenticate import principal_for

    return principal_for(user) if scopes is None else principal_for(user, scopes=scopes, key_id="k")


grant_lists = st.lists(
    st.tuples(st.sampled_from(KBS), st.sampled_from(("user", "department")), st.integers(0, 2),
              st.sampled_from(("read", "write"))), max_size=10,
)  # fmt: skip
memberships = st.lists(st.tuples(st.sampled_from(USERS), st.sampled_from(DEPTS)), max_size=6)
owners = st.dictionaries(st.sampled_from(KBS), st.sampled_from(USERS), max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grants=grant_lists, members=memberships, owned=owners)
def test_kb_access_is_exactly_what_the_lists_say(access: AccessControl, grants, members, owned) -> None:
    db = access.db
    with db.write() as conn:  # a fresh graph for each example
        for table in ("kb_grants", "kb_owners", "memberships"):
            conn.execute(f"DELETE FROM {table}")
    accounts = access.accounts
    user_ids = {}
    for name in USERS:
        try:
            user_ids[name] = accounts.find_user(name).id
        except Exception:
            user_ids[name] = accounts.create_user(name, password="pw-" + name * 3)[0].id
    dept_ids = {name: accounts.ensure_department(name).id for name in DEPTS}
    member_of: dict[str, set[str]] = {u: set() for u in USERS}
    for user, dept in members:
        member_of[user].add(dept)
    for user in USERS:
        accounts.update_user(user_ids[user], departments=sorted(dept_ids[d] for d in member_of[user]))
    expected: dict[tuple[str, str], str] = {}  # (user, kb) -> strongest right
    rank = {"read": 1, "write": 2, "manage": 3}

    def give(user: str, kb: str, right: str) -> None:
        if rank[right] > rank.get(expected.get((user, kb), ""), 0):
            expected[(user, kb)] = right

    final: dict[tuple[str, str, str], str] = {}
    for kb, kind, index, permission in grants:
        subject = USERS[index] if kind == "user" else DEPTS[index % len(DEPTS)]
        final[(kb, kind, subject)] = permission  # a second grant of one subject replaces the first
    for (kb, kind, subject), permission in final.items():
        subject_id = user_ids[subject] if kind == "user" else dept_ids[subject]
        access.grants.grant(kb, kind, subject_id, permission)  # type: ignore[arg-type]
        for user in USERS:
            if (kind == "user" and user == subject) or (kind == "department" and subject in member_of[user]):
                give(user, kb, permission)
    for kb, user in owned.items():
        access.grants.set_owner(kb, user_ids[user])
        give(user, kb, "manage")

    policy = access.policy
    for user in USERS:
        principal = _principal(access, user)
        scope = policy.readable_kbs(principal)
        reader_key = _principal(access, user, frozenset({"inference"}))
        for kb in KBS:
            want = expected.get((user, kb))
            assert scope.allows(kb) == (want is not None), (user, kb, want)
            assert policy.kb_right(principal, kb) == want
            # an inference-scope key of the same user never writes
            key_right = policy.kb_right(reader_key, kb)
            assert key_right == (None if want is None else "read")


def test_route_rules_by_role_and_scope(access: AccessControl) -> None:
    member = access.accounts.create_user("member1", password="member-password")[0]
    policy = access.policy
    from bendi.access.authenticate import principal_for

    session = principal_for(member, session_id="s")
    inference_key = principal_for(member, scopes=frozenset({"inference"}), key_id="k")
    admin = principal_for(access.accounts.find_user("root"), session_id="s")
    with pytest.raises(AuthenticationError):
        policy.authorize_route(None, "GET", "/v1/models")
    assert policy.authorize_route(None, "GET", "/health") == "public"
    assert policy.authorize_route(session, "POST", "/v1/chat/completions") == "inference"
    with pytest.raises(ForbiddenError):
        policy.authorize_route(session, "GET", "/v1/admin/users")
    with pytest.raises(ForbiddenError):
        policy.authorize_route(session, "POST", "/api/pull")  # model management is admin-only
    with pytest.raises(ForbiddenError):
        policy.authorize_route(inference_key, "POST", "/v1/knowledge-bases/{kb}/documents")
    with pytest.raises(ForbiddenError):  # an inference key cannot mint keys for itself
        policy.authorize_route(inference_key, "POST", "/v1/auth/keys")
    with pytest.raises(ForbiddenError):  # default deny: a route nobody listed
        policy.authorize_route(admin, "GET", "/v1/something-new")
    assert policy.authorize_route(admin, "GET", "/v1/admin/users") == "admin"
    assert not policy.may_create_kb(session)
    kb_editor = access.accounts.create_user("editor1", role="kb-editor", password="editor-password")[0]
    assert policy.may_create_kb(principal_for(kb_editor, session_id="s"))


def test_generated_password_allows_only_changing_it(access: AccessControl) -> None:
    user, generated = access.accounts.create_user("newbie")
    assert generated and user.must_change_password
    from bendi.access.authenticate import principal_for

    principal = principal_for(user, session_id="s")
    with pytest.raises(ForbiddenError, match="one-time password"):
        access.policy.authorize_route(principal, "POST", "/v1/chat/completions")
    assert access.policy.authorize_route(principal, "POST", "/v1/auth/password") == "account"


def test_conversations_are_private_even_from_admins(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    control = AccessControl(settings, DataPaths(tmp_path).ensure())
    admin, _ = control.init_team("root", "root-password")
    from bendi.access.authenticate import principal_for

    principal = principal_for(admin, session_id="s")
    assert control.policy.conversation_owner(principal) == admin.id
    opened = AccessControl(load_settings(home=tmp_path, admin_reads_conversations=True), DataPaths(tmp_path))
    assert opened.policy.conversation_owner(principal) is None


def test_team_mode_turned_on_elsewhere_applies_to_the_next_question(tmp_path: Path) -> None:
    """The server remembers the team-mode answer between requests, but `bendi admin init` from another
    process (here: another AccessControl on the same files) is seen by the very next question."""
    serving = AccessControl(load_settings(home=tmp_path, min_password_chars=4), DataPaths(tmp_path).ensure())
    assert serving.team_mode is False  # no access database yet
    serving.accounts.count_admins()  # the server opens the database: it now exists, team mode still off
    assert serving.team_mode is False
    assert serving.team_mode is False  # remembered
    elsewhere = AccessControl(load_settings(home=tmp_path, min_password_chars=4), DataPaths(tmp_path))
    elsewhere.init_team("root", "root-password")
    assert serving.team_mode is True
