"""LDAP login against a real slapd: both bind styles, wrong input, injection, group mapping, outages."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from access.slapd import SlapdServer, free_port, slapd_binary, start_slapd
from bendi.access.ldap import LdapConfig, LdapDirectory, LdapUnavailableError
from bendi.core.errors import UserInputError
from bendi.core.settings import Settings

DEPARTMENTS = ("tongfeng=通风科", "jidian=机电科")


def direct(server: SlapdServer, **overrides: Any) -> LdapDirectory:
    """Direct bind: uid={username},ou=people,... (groups searched as the user)."""
    values: dict[str, Any] = {
        "ldap_url": server.url,
        "ldap_user_dn": f"uid={{username}},{server.people_dn}",
        "ldap_group_base": server.groups_dn,
        "ldap_group_departments": DEPARTMENTS,
        "ldap_admin_groups": ("bendi-admins",),
        "ldap_kb_editor_groups": ("kb-editors",),
        "ldap_timeout_s": 2.0,
    }
    values.update(overrides)
    config = LdapConfig.from_settings(Settings(**values))
    assert config is not None
    return LdapDirectory(config)


def searching(server: SlapdServer, **overrides: Any) -> LdapDirectory:
    """Search-then-bind with the service account and the default (uid or sAMAccountName) filter."""
    values: dict[str, Any] = {
        "ldap_user_dn": None,
        "ldap_bind_dn": server.service_dn,
        "ldap_bind_password": server.service_password,
        "ldap_search_base": server.base_dn,
        "ldap_group_base": None,  # falls back to the search base
    }
    values.update(overrides)
    return direct(server, **values)


@pytest.fixture(params=["direct", "search"])
def directory(request: pytest.FixtureRequest, slapd_server: SlapdServer) -> LdapDirectory:
    return direct(slapd_server) if request.param == "direct" else searching(slapd_server)


def test_direct_bind_logs_in_with_chinese_name_groups_and_admin_role(slapd_server: SlapdServer) -> None:
    user = slapd_server.user("zhangwei")
    identity = direct(slapd_server).authenticate("zhangwei", user.password)
    assert identity is not None
    assert (identity.username, identity.dn) == ("zhangwei", slapd_server.user_dn("zhangwei"))
    assert (identity.display_name, identity.email) == ("张伟", "zhangwei@bendi.test")
    assert (identity.role, identity.departments) == ("admin", ("通风科",))
    assert sorted(identity.groups) == sorted(
        [slapd_server.group_dn("tongfeng"), slapd_server.group_dn("bendi-admins")]
    )


def test_search_then_bind_maps_unique_member_and_posix_groups(slapd_server: SlapdServer) -> None:
    identity = searching(slapd_server).authenticate("lina", slapd_server.user("lina").password)
    assert identity is not None
    assert identity.dn == slapd_server.user_dn("lina")
    assert identity.display_name == "李娜"  # no displayName: cn
    assert identity.email == "lina@bendi.test"
    assert identity.role == "kb-editor"  # posixGroup memberUid
    assert identity.departments == ("机电科",)  # groupOfUniqueNames
    assert sorted(identity.groups) == sorted(
        [slapd_server.group_dn("jidian"), slapd_server.group_dn("kb-editors")]
    )


def test_two_departments_and_plain_member(directory: LdapDirectory, slapd_server: SlapdServer) -> None:
    wang = directory.authenticate("wangfang", slapd_server.user("wangfang").password)
    assert wang is not None
    assert (wang.role, wang.departments, wang.email, wang.display_name) == (
        "member",
        ("通风科", "机电科"),
        None,
        "王芳",
    )
    bob = directory.authenticate("bob", slapd_server.user("bob").password)
    assert bob is not None
    assert (bob.role, bob.departments, bob.groups, bob.display_name) == ("member", (), (), "Bob Smith")


def test_username_is_normalized_to_the_directorys_spelling(
    directory: LdapDirectory, slapd_server: SlapdServer
) -> None:
    password = slapd_server.user("zhangwei").password
    for typed in ("  zhangwei ", "ZhangWei", "ｚｈａｎｇｗｅｉ"):  # spaces, case, full-width (NFKC)
        identity = directory.authenticate(typed, password)
        assert identity is not None, typed
        assert identity.username == "zhangwei"


def test_wrong_password_unknown_user_and_empty_password_are_refused(
    directory: LdapDirectory, slapd_server: SlapdServer
) -> None:
    password = slapd_server.user("zhangwei").password
    assert directory.authenticate("zhangwei", password + "x") is None
    assert directory.authenticate("zhangwei", password.upper()) is None
    assert directory.authenticate("nobody", password) is None
    # An empty password would be an unauthenticated bind, which slapd answers with success.
    assert directory.authenticate("zhangwei", "") is None
    assert directory.authenticate("", "") is None
    assert directory.authenticate("", password) is None
    assert directory.authenticate("   ", password) is None


@pytest.mark.parametrize(
    "username",
    [
        "*",
        "*)(uid=*",
        "zhangwei)(|(uid=*",
        "*)(|(objectClass=*",
        "zhang*",
        "\\2a",
        "zhangwei\x00",
        "zhang\nwei",
        "zhangwei\u200b",
        "zhangwei,ou=people,dc=bendi,dc=test",
        "uid=zhangwei,ou=people,dc=bendi,dc=test",
        "zhangwei+cn=张伟",
        "x" * 300,
    ],
)
def test_injection_does_not_log_in(
    directory: LdapDirectory, slapd_server: SlapdServer, username: str
) -> None:
    for password in (slapd_server.user("zhangwei").password, "*", slapd_server.admin_password):
        assert directory.authenticate(username, password) is None


def test_admin_dn_is_not_reachable_through_the_template(slapd_server: SlapdServer) -> None:
    # The rootdn is no entry under ou=people, and an escaped DN cannot climb out of the template.
    assert direct(slapd_server).authenticate("admin", slapd_server.admin_password) is None
    assert searching(slapd_server).authenticate("admin", slapd_server.admin_password) is None


def test_a_filter_matching_several_entries_logs_nobody_in(slapd_server: SlapdServer) -> None:
    loose = searching(slapd_server, ldap_user_filter="(|(uid={username})(objectClass=posixAccount))")
    assert loose.authenticate("zhangwei", slapd_server.user("zhangwei").password) is None


def test_groups_match_by_dn_case_insensitively(slapd_server: SlapdServer) -> None:
    directory = direct(
        slapd_server,
        ldap_group_departments=(
            f"CN=TongFeng, OU=Groups, {slapd_server.base_dn.upper()}=通风科",
            "JIDIAN=机电科",
        ),
        ldap_admin_groups=(),
        ldap_kb_editor_groups=(slapd_server.group_dn("bendi-admins"),),
    )
    identity = directory.authenticate("zhangwei", slapd_server.user("zhangwei").password)
    assert identity is not None
    assert (identity.role, identity.departments) == ("kb-editor", ("通风科",))


def test_service_account_with_a_wrong_password_is_a_configuration_error(slapd_server: SlapdServer) -> None:
    directory = searching(slapd_server, ldap_bind_password="wrong")
    with pytest.raises(LdapUnavailableError, match="BENDI_LDAP_BIND_DN") as info:
        directory.authenticate("zhangwei", slapd_server.user("zhangwei").password)
    assert info.value.http_status == 503


def test_a_missing_group_base_is_an_error_not_a_silent_demotion(slapd_server: SlapdServer) -> None:
    directory = direct(slapd_server, ldap_group_base=f"ou=missing,{slapd_server.base_dn}")
    with pytest.raises(LdapUnavailableError, match="BENDI_LDAP_GROUP_BASE"):
        directory.authenticate("zhangwei", slapd_server.user("zhangwei").password)


def test_failover_to_the_next_url(slapd_server: SlapdServer) -> None:
    directory = direct(slapd_server, ldap_url=f"ldap://127.0.0.1:{free_port()} {slapd_server.url}")
    assert directory.authenticate("bob", slapd_server.user("bob").password) is not None


def test_every_url_down_fails_quickly(slapd_server: SlapdServer) -> None:
    urls = f"ldap://127.0.0.1:{free_port()} ldap://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(LdapUnavailableError):
        direct(slapd_server, ldap_url=urls).authenticate("bob", slapd_server.user("bob").password)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("style", ["direct", "search"])
def test_closed_port_is_unavailable_quickly(slapd_server: SlapdServer, style: str) -> None:
    url = f"ldap://127.0.0.1:{free_port()}"
    directory = (
        direct(slapd_server, ldap_url=url) if style == "direct" else searching(slapd_server, ldap_url=url)
    )
    started = time.monotonic()
    with pytest.raises(LdapUnavailableError) as info:
        directory.authenticate("zhangwei", "whatever-password")
    assert time.monotonic() - started < 2.0
    assert (info.value.http_status, info.value.code) == (503, "ldap_unavailable")
    assert "BENDI_LDAP_URL" in info.value.message and url in info.value.message


@pytest.fixture()
def silent_server() -> Iterator[str]:
    """A port that accepts TCP connections and never answers (a hung directory)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"ldap://127.0.0.1:{sock.getsockname()[1]}"


def test_a_server_that_never_answers_times_out(slapd_server: SlapdServer, silent_server: str) -> None:
    directory = direct(slapd_server, ldap_url=silent_server, ldap_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(LdapUnavailableError):
        directory.authenticate("zhangwei", slapd_server.user("zhangwei").password)
    assert time.monotonic() - started < 5.0


def test_own_server_new_chinese_user_then_outage(tmp_path: Path) -> None:
    if slapd_binary() is None:
        pytest.skip("slapd is not installed (Debian: apt-get install slapd ldap-utils)")
    server = start_slapd(tmp_path)
    try:
        server.add_user("张三", "三的密码-abc", cn="张三", mail="zhangsan@bendi.test")
        server.add_group("通风科", ["张三"])
        directory = direct(server, ldap_group_departments=("通风科=通风科",))
        identity = directory.authenticate("张三", "三的密码-abc")
        assert identity is not None
        assert (identity.username, identity.display_name, identity.departments) == (
            "张三",
            "张三",
            ("通风科",),
        )
        assert identity.groups == (server.group_dn("通风科"),)
        server.stop()
        started = time.monotonic()
        with pytest.raises(LdapUnavailableError):
            directory.authenticate("张三", "三的密码-abc")
        assert time.monotonic() - started < 2.0
    finally:
        server.stop()


def test_config_from_settings() -> None:
    assert LdapConfig.from_settings(Settings()) is None
    with pytest.raises(UserInputError, match="BENDI_LDAP_USER_DN"):
        LdapConfig.from_settings(Settings(ldap_url="ldap://127.0.0.1"))
    with pytest.raises(UserInputError, match="{username}"):
        LdapConfig.from_settings(Settings(ldap_url="ldap://x", ldap_user_dn="uid=bob,dc=x"))
    with pytest.raises(UserInputError, match="BENDI_LDAP_BIND_PASSWORD"):
        LdapConfig.from_settings(
            Settings(ldap_url="ldap://x", ldap_search_base="dc=x", ldap_bind_dn="cn=svc,dc=x")
        )
    with pytest.raises(UserInputError, match="GROUP=部门名"):
        LdapConfig.from_settings(
            Settings(ldap_url="ldap://x", ldap_search_base="dc=x", ldap_group_departments=("通风科",))
        )
    config = LdapConfig.from_settings(
        Settings(
            ldap_url="ldap://x",
            ldap_search_base="dc=x",
            ldap_group_departments=("cn=vent,ou=groups,dc=x=通风科", " jidian = 机电科 "),
        )
    )
    assert config is not None
    assert config.group_departments == {"cn=vent,ou=groups,dc=x": "通风科", "jidian": "机电科"}
    assert config.bind_dn is None and config.user_dn_template is None
