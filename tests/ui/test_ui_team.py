"""Team mode in the browser: sign-in, forced password change, admin screens, access lists, keys, audit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pages import open_app, severe_console_errors, sign_in, wait_for, wait_screen, web_storage

from server_process import ServerProcess, free_port

By = pytest.importorskip("selenium.webdriver.common.by").By
Select = pytest.importorskip("selenium.webdriver.support.ui").Select

BOSS, BOSS_PASSWORD = "boss", "boss-passw0rd-2025"
MEMBER, MEMBER_NEW_PASSWORD = "zhang", "zhang-passw0rd-2025"
DEPARTMENT = "通风科"
SHARED_KB = "通风规程"  # a display name in Chinese: the server derives the identifier
PRIVATE_KB = "board-minutes"
# What a test expects the browser to log: failed sign-ins, and the calls a session-less page makes.
EXPECTED = ("401 (Unauthorized)", "429 (Too Many Requests)", "400 (Bad Request)", "403 (Forbidden)")


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real `bendi serve` in team mode: the data directory made by `bendi admin init` first."""
    home = tmp_path_factory.mktemp("bendi-team-home")
    bendi = str(Path(sys.executable).parent / "bendi")
    env = dict(os.environ, BENDI_HOME=str(home))
    subprocess.run([bendi, "admin", "init", "--username", BOSS, "--password-stdin"], input=f"{BOSS_PASSWORD}\n",
                   text=True, check=True, env=env, capture_output=True)  # fmt: skip
    server = ServerProcess(home, free_port(), {})
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def boss_api(team: ServerProcess) -> Iterator[Callable[..., httpx.Response]]:
    """The admin's own HTTP session (cookie + CSRF token), for setup a test does not click through."""
    client = httpx.Client(base_url=team.base_url, timeout=30)
    body = client.post("/v1/auth/login", json={"username": BOSS, "password": BOSS_PASSWORD}).json()

    def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        return client.request(method, path, headers={"X-CSRF-Token": body["csrf_token"]}, **kwargs)

    yield call
    client.close()


@pytest.fixture(scope="module")
def shared() -> dict[str, str]:
    """What one test hands the next (the member's one-time password)."""
    return {}


@pytest.fixture(scope="module")
def driver(browser_factory: Callable[[str], Any]) -> Any:
    return browser_factory("zh-CN")


def _css(driver: Any, css: str, timeout_s: float = 10.0) -> Any:
    """The first element matching `css`, once there is one."""
    return wait_for(lambda: driver.find_element(By.CSS_SELECTOR, css), timeout_s, css)


def _shown(driver: Any, element_id: str) -> Any:
    """The element with this id, once it is displayed."""
    return wait_for(
        lambda: (e := driver.find_element(By.ID, element_id)).is_displayed() and e, 10, element_id
    )


def _select(driver: Any, element_id: str) -> Any:
    return Select(driver.find_element(By.ID, element_id))


def _click(driver: Any, css: str) -> None:
    _css(driver, css).click()


def _admin_tab(driver: Any, base: str, tab: str) -> None:
    driver.get(f"{base}/#/admin/{tab}")
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready === '1'"), 20, "the app")
    wait_for(lambda: driver.find_element(By.ID, f"admin-{tab}").is_displayed(), 10, f"the {tab} tab")


def _close_dialog(driver: Any) -> None:
    _click(driver, ".overlay .dialog .icon-btn")
    wait_for(lambda: not driver.find_element(By.ID, "overlay").is_displayed(), 5, "the dialog to close")


def _logout(driver: Any) -> None:
    _click(driver, "#logout")
    wait_screen(driver, "login")


def test_single_mode_has_no_login(
    bendi_server_factory: Callable[..., Any], browser_factory: Callable[[str], Any]
) -> None:
    single = bendi_server_factory()
    browser = browser_factory("en")
    open_app(browser, single.base_url, "#/settings")
    assert browser.execute_script("return document.body.dataset.screen") == "app"
    assert browser.find_element(By.ID, "login").get_attribute("hidden") is not None
    assert not browser.find_element(By.ID, "account-box").is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, ".main-nav a[data-view=admin]").is_displayed()
    assert browser.find_element(By.ID, "api-key").is_displayed()  # the single-user key field stays
    assert severe_console_errors(browser) == []


def test_login_page_wrong_password_then_admin_signs_in(
    team: ServerProcess, driver: Any, artifacts: Path
) -> None:
    driver.get(f"{team.base_url}/")
    wait_screen(driver, "login")
    assert not driver.find_element(By.ID, "app").is_displayed()
    assert driver.find_element(By.CSS_SELECTOR, ".login-title").text == "登录"
    sign_in(driver, BOSS, "not-the-password")
    assert _shown(driver, "login-error").text == "Wrong username or password."
    driver.save_screenshot(str(artifacts / "ui-team-login-error.png"))

    driver.find_element(By.ID, "login-password").send_keys(BOSS_PASSWORD)
    driver.find_element(By.ID, "login-submit").click()  # the username is still filled in
    wait_screen(driver, "app")
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready === '1'"), 20, "the app")
    assert BOSS in driver.find_element(By.ID, "account-name").text
    assert driver.find_element(By.CSS_SELECTOR, ".main-nav a[data-view=admin]").is_displayed()
    # The session is an HttpOnly cookie; the CSRF token lives in memory only.
    cookie = driver.get_cookie("bendi_session")
    assert cookie and cookie["httpOnly"]
    assert "bendi_session" not in driver.execute_script("return document.cookie")
    csrf = driver.execute_async_script(
        "const done = arguments[0]; fetch('/v1/auth/status').then(r => r.json()).then(s => done(s.csrf_token))"
    )
    stored = web_storage(driver)
    assert csrf and csrf not in stored and cookie["value"] not in stored
    assert "bendi_" not in stored.replace("bendi.", "")  # no API key either ("bendi.lang" is fine)


def test_admin_creates_department_and_user(team: ServerProcess, driver: Any, shared: dict[str, str],
                                           artifacts: Path) -> None:  # fmt: skip
    _admin_tab(driver, team.base_url, "departments")
    driver.find_element(By.ID, "dept-name").send_keys(DEPARTMENT)
    driver.find_element(By.ID, "dept-create").click()
    _css(driver, f".dept-row[data-name='{DEPARTMENT}']")

    _admin_tab(driver, team.base_url, "users")
    _click(driver, f"#user-departments label[data-name='{DEPARTMENT}']")
    driver.find_element(By.ID, "user-username").send_keys(MEMBER)
    driver.find_element(By.ID, "user-display").send_keys("张三")
    driver.find_element(By.ID, "user-create").click()  # no password: the server makes a one-time one
    one_time = wait_for(lambda: driver.find_element(By.ID, "secret-value").text, 10, "the one-time password")
    driver.save_screenshot(str(artifacts / "ui-team-user-created.png"))
    _close_dialog(driver)
    row = _css(driver, f".user-row[data-username='{MEMBER}']")
    assert DEPARTMENT in row.find_element(By.CSS_SELECTOR, ".user-departments").text
    assert "须修改密码" in row.text
    row.find_element(By.CSS_SELECTOR, ".user-edit").click()  # a quota of 30 requests a minute
    _css(driver, "#edit-rpm").send_keys("30")
    driver.find_element(By.ID, "edit-save").click()
    wait_for(
        lambda: "30 次/分钟" in _css(driver, f".user-row[data-username='{MEMBER}']").text, 10, "the quota"
    )
    shared["one_time_password"] = one_time


def test_department_gets_read_access_in_access_panel(
    team: ServerProcess, driver: Any, boss_api: Any, artifacts: Path
) -> None:
    assert boss_api("POST", "/v1/knowledge-bases", json={"name": PRIVATE_KB}).status_code == 201
    open_app(driver, team.base_url, "#/knowledge")
    driver.find_element(By.ID, "kb-new-name").send_keys(SHARED_KB)
    driver.find_element(By.ID, "kb-create").click()
    wait_for(lambda: SHARED_KB in _css(driver, "#kb-detail .kb-title").text, 10, "the new base")
    panel = _shown(driver, "kb-access")
    kbs = boss_api("GET", "/v1/knowledge-bases").json()["data"]
    kb_id = next(kb["name"] for kb in kbs if kb["display_name"] == SHARED_KB)
    assert kb_id in driver.find_element(By.CSS_SELECTOR, "#kb-detail .kb-id").text  # the derived identifier
    owner = boss_api("GET", f"/v1/knowledge-bases/{kb_id}/access").json()["owner"]
    assert (owner["display_name"] if owner else "无") in panel.find_element(By.ID, "kb-owner").text
    _select(driver, "grant-kind").select_by_value("department")
    # The list of departments is fetched when the kind changes.
    wait_for(
        lambda: _select(driver, "grant-subject").select_by_visible_text(DEPARTMENT) or True, 10, "the list"
    )
    _select(driver, "grant-permission").select_by_value("read")
    driver.find_element(By.ID, "grant-add").click()
    grant = _css(driver, f".grant-row[data-subject='{DEPARTMENT}']")
    assert grant.get_attribute("data-permission") == "read"
    driver.execute_script("arguments[0].scrollIntoView()", panel)
    driver.save_screenshot(str(artifacts / "ui-team-kb-access.png"))


def test_member_changes_password_sees_only_granted_base_and_manages_a_key(
    team: ServerProcess, driver: Any, shared: dict[str, str], artifacts: Path
) -> None:
    _logout(driver)
    sign_in(driver, MEMBER, shared["one_time_password"])
    wait_screen(driver, "password")  # nothing else before the one-time password is replaced
    for field in ("pw-new", "pw-repeat"):
        driver.find_element(By.ID, field).send_keys(MEMBER_NEW_PASSWORD)
    driver.find_element(By.ID, "pw-submit").click()
    wait_screen(driver, "app")

    open_app(driver, team.base_url, "#/knowledge")
    names = wait_for(
        lambda: [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#kb-list .n")], 10, "bases"
    )
    assert names == [SHARED_KB]  # not the base nobody shared
    assert driver.find_elements(By.ID, "kb-new-name") == []  # members do not create bases
    assert driver.find_element(By.ID, "kb-access").get_attribute("hidden") is not None
    assert not driver.find_element(By.CSS_SELECTOR, ".main-nav a[data-view=admin]").is_displayed()
    driver.save_screenshot(str(artifacts / "ui-team-member-knowledge.png"))

    open_app(driver, team.base_url, "#/account")
    assert DEPARTMENT in driver.find_element(By.ID, "account-departments").text
    driver.find_element(By.ID, "my-key-name").send_keys("laptop")
    driver.find_element(By.ID, "my-key-days").send_keys("30")
    driver.find_element(By.ID, "my-key-create").click()
    key = wait_for(lambda: driver.find_element(By.ID, "secret-value").text, 10, "the new key")
    assert key.startswith("bendi_") and key not in web_storage(driver)
    driver.save_screenshot(str(artifacts / "ui-team-key-created.png"))
    _close_dialog(driver)
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{team.base_url}/v1/models", headers=headers).status_code == 200
    _click(driver, "#my-keys .key-row[data-name=laptop] .key-revoke")
    driver.switch_to.alert.accept()
    _css(driver, "#my-keys .key-row[data-name=laptop] .badge.bad")  # shown as revoked
    assert httpx.get(f"{team.base_url}/v1/models", headers=headers).status_code == 401


def test_audit_log_keys_and_usage_for_the_admin(team: ServerProcess, driver: Any, artifacts: Path) -> None:
    _logout(driver)
    sign_in(driver, BOSS, BOSS_PASSWORD)
    wait_screen(driver, "app")
    _admin_tab(driver, team.base_url, "audit")
    _select(driver, "audit-action").select_by_value("auth.login")

    def login_actors() -> list[str]:
        rows = driver.find_elements(By.CSS_SELECTOR, "#audit-table .audit-row")
        actors = [r.get_attribute("data-actor") for r in rows]
        return actors if all(r.get_attribute("data-action") == "auth.login" for r in rows) else []

    actors = wait_for(lambda: (a := login_actors()) and MEMBER in a and a, 10, "the member's login")
    assert actors[0] == BOSS  # newest first: the sign-in a moment ago
    driver.find_element(By.ID, "audit-actor").send_keys(MEMBER)
    driver.find_element(By.ID, "audit-apply").click()
    wait_for(lambda: set(login_actors()) == {MEMBER}, 10, "only the member's rows")
    assert "format=csv" in driver.find_element(By.ID, "audit-export-csv").get_attribute("href")
    driver.find_element(By.ID, "audit-verify").click()
    verdict = _css(driver, "#audit-verdict .badge[data-ok]", 20)
    assert verdict.get_attribute("data-ok") == "1", verdict.text
    driver.save_screenshot(str(artifacts / "ui-team-audit.png"))

    _admin_tab(driver, team.base_url, "keys")  # everyone's keys: the member's, revoked
    assert _css(driver, "#all-keys .key-row[data-name=laptop] .badge.bad").text == "已吊销"
    _admin_tab(driver, team.base_url, "usage")
    _css(driver, "#usage-table tr")


def test_ended_session_returns_to_login_and_throttling_shows_the_wait(team: ServerProcess, driver: Any,
                                                                      browser_factory: Callable[[str], Any]) -> None:  # fmt: skip
    driver.delete_cookie("bendi_session")  # as if it expired or ended elsewhere
    driver.execute_script("location.hash = '#/models'")  # the next API call answers 401
    wait_screen(driver, "login")
    assert driver.find_element(By.ID, "login-error").text == "登录已失效，请重新登录。"

    english = browser_factory("en")
    english.get(f"{team.base_url}/")
    wait_screen(english, "login")
    assert english.find_element(By.CSS_SELECTOR, ".login-title").text == "Sign in"
    for _ in range(6):  # failures for one name: the wait grows after the third
        httpx.post(f"{team.base_url}/v1/auth/login", json={"username": "mallory", "password": "guess-guess"})
    sign_in(english, "mallory", "guess-guess")
    assert "Too many failed sign-ins" in _shown(english, "login-error").text
    button = english.find_element(By.ID, "login-submit")
    assert not button.is_enabled() and "Try again in" in button.text
    assert severe_console_errors(english, EXPECTED) == []
