"""The chat screen in a real headless Chromium against a real `bendi serve` with the real model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pages import limit_answer_length, no_alert, open_app, severe_console_errors, wait_for

By = pytest.importorskip("selenium.webdriver.common.by").By
Keys = pytest.importorskip("selenium.webdriver.common.keys").Keys

XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
# APIs that other parts of bendi add; the chat screen works without them.
OPTIONAL_APIS = ("/v1/knowledge-bases", "/v1/plan")


def _conversations(base_url: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = httpx.get(base_url + "/v1/conversations").json()["data"]
    return data


def test_send_message_streams_answer_and_keeps_conversation(
    ui_server: Any, browser: Any, artifacts: Path
) -> None:
    open_app(browser, ui_server.base_url)
    picker = wait_for(lambda: browser.find_element(By.ID, "model-picker"), what="model picker")
    wait_for(lambda: "smollm2:135m" in picker.text, what="the installed model in the picker")
    limit_answer_length(browser, 24)
    box = browser.find_element(By.ID, "chat-input")
    box.send_keys("Write one short sentence about the sea. " + XSS)
    box.send_keys(Keys.ENTER)
    # While the answer streams the send button becomes a stop button.
    wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#stop, .msg.assistant:not(.streaming) .md"),
        30,
        "streaming",
    )
    answer = wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, ".msg.assistant:not(.streaming) .bubble .md"),
        240,
        "the answer",
    )
    assert answer.text.strip(), "the streamed answer is empty"
    # The XSS payload in the user's message is shown as text, not run and not turned into elements.
    user = browser.find_element(By.CSS_SELECTOR, ".msg.user .bubble")
    assert XSS in user.text
    assert browser.find_elements(By.CSS_SELECTOR, "#messages img[src='x'], #messages script") == []
    assert browser.execute_script("return window.__pwned === undefined") and no_alert(browser)
    # Kept server-side: the conversation, both messages, in the sidebar.
    wait_for(lambda: browser.find_element(By.ID, "send"), 20, "the stream to finish")
    conversations = wait_for(lambda: _conversations(ui_server.base_url), what="the stored conversation")
    stored = httpx.get(f"{ui_server.base_url}/v1/conversations/{conversations[0]['id']}").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][1]["content"].strip() == answer.text.strip() or stored["messages"][1]["content"]
    assert browser.find_elements(By.CSS_SELECTOR, f".conv-item[data-id='{stored['id']}']")
    browser.save_screenshot(str(artifacts / "ui-chat-stream.png"))
    assert severe_console_errors(browser, OPTIONAL_APIS) == []


def test_stop_regenerate_and_edit(ui_server: Any, browser: Any) -> None:
    open_app(browser, ui_server.base_url, "#/chat")
    browser.find_element(By.ID, "new-chat").click()
    box = wait_for(lambda: browser.find_element(By.ID, "chat-input"))
    # Earlier tests leave a short answer limit as the default; this answer must run long enough to stop.
    limit_answer_length(browser, 2000)
    # A counting task keeps the tiny model going long enough to be stopped mid-answer.
    box.send_keys("Count from 1 to 1000, one number per line: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12")
    box.send_keys(Keys.ENTER)
    wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, ".msg.assistant.streaming .md").text.strip(),
        120,
        "first tokens",
    )
    browser.find_element(By.ID, "stop").click()
    stopped = wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, ".msg.assistant:not(.streaming)"), 20, "stop"
    )
    assert "已停止" in stopped.text
    conv_id = wait_for(
        lambda: browser.execute_script("return location.hash.split('/')[2]"), what="conversation in URL"
    )
    stored = wait_for(lambda: httpx.get(f"{ui_server.base_url}/v1/conversations/{conv_id}").json()
                      if len(httpx.get(f"{ui_server.base_url}/v1/conversations/{conv_id}").json()["messages"]) == 2
                      else None, what="the stopped answer to be saved")  # fmt: skip
    first_answer_id = stored["messages"][1]["id"]
    limit_answer_length(browser, 32)  # the per-chat setting, saved on the conversation
    wait_for(
        lambda: httpx.get(f"{ui_server.base_url}/v1/conversations/{conv_id}").json()["max_tokens"] == 32,
        10,
        "saved",
    )
    # Edit the question and resend: the old answer is replaced by a new one for the new text.
    browser.find_element(By.CSS_SELECTOR, ".msg.user .edit").click()
    area = browser.find_element(By.CSS_SELECTOR, ".edit-area")
    area.clear()
    area.send_keys("Say hi.")
    browser.find_element(By.CSS_SELECTOR, ".edit-box .primary").click()

    def resent() -> list[dict[str, Any]] | None:
        messages: list[dict[str, Any]] = httpx.get(f"{ui_server.base_url}/v1/conversations/{conv_id}").json()[
            "messages"
        ]
        return messages if len(messages) == 2 and messages[0]["content"] == "Say hi." else None

    after = wait_for(resent, 180, "the new answer to be saved")
    wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, f".msg.assistant[data-id='{after[1]['id']}']"),
        10,
        "it shown",
    )
    # Regenerate: the last answer is replaced by a fresh one.
    browser.find_element(By.CSS_SELECTOR, f".msg.assistant[data-id='{after[1]['id']}'] .regenerate").click()

    def regenerated() -> list[dict[str, Any]] | None:
        messages: list[dict[str, Any]] = httpx.get(f"{ui_server.base_url}/v1/conversations/{conv_id}").json()[
            "messages"
        ]
        return messages if len(messages) == 2 and messages[1]["id"] != after[1]["id"] else None

    again = wait_for(regenerated, 180, "the regenerated answer")
    assert again[0]["id"] == after[0]["id"]
    assert [m["content"] for m in after if m["role"] == "user"] == ["Say hi."]
    assert first_answer_id not in [m["id"] for m in after] and len(after) == 2


def _click(browser: Any, selector: str) -> bool:
    button = browser.find_element(By.CSS_SELECTOR, selector)
    if not button.is_displayed():
        return False
    button.click()
    return True


def test_conversation_search_rename_delete(ui_server: Any, browser: Any) -> None:
    base = ui_server.base_url
    mine = httpx.post(base + "/v1/conversations", json={"title": "煤矿通风问题"}).json()
    httpx.post(
        f"{base}/v1/conversations/{mine['id']}/messages",
        json={"role": "user", "content": "瓦斯浓度超限怎么办"},
    )
    open_app(browser, base)
    search = browser.find_element(By.ID, "conv-search")
    search.send_keys("瓦斯")
    wait_for(lambda: [e.get_attribute("data-id") for e in browser.find_elements(By.CSS_SELECTOR, ".conv-item")] == [mine["id"]],
             10, "search by message text")  # fmt: skip
    # The list re-renders as searches settle: find and click in one retried step.
    wait_for(lambda: _click(browser, f".conv-item[data-id='{mine['id']}']"), 20, "the conversation")
    # The row's buttons show on the active row: wait until the conversation is open.
    wait_for(lambda: _click(browser, f".conv-item[data-id='{mine['id']}'] .rename"), 20, "the rename button")
    field = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".rename-input"), 10, "the rename field")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("通风 & <b>安全</b>", Keys.ENTER)
    wait_for(
        lambda: httpx.get(f"{base}/v1/conversations/{mine['id']}").json()["title"] == "通风 & <b>安全</b>",
        10,
        "rename",
    )
    search.clear()
    search.send_keys("通风")
    wait_for(
        lambda: (
            browser.find_element(By.CSS_SELECTOR, f".conv-item[data-id='{mine['id']}'] .title").text
            == "通风 & <b>安全</b>"
        ),
        10,
        "the new title shown as text",
    )
    wait_for(lambda: _click(browser, f".conv-item[data-id='{mine['id']}'] .delete"), 20, "the delete button")
    wait_for(lambda: not no_alert(browser), 10, "the confirmation")
    browser.switch_to.alert.accept()
    wait_for(lambda: httpx.get(f"{base}/v1/conversations/{mine['id']}").status_code == 404, 10, "delete")
    wait_for(
        lambda: not browser.find_elements(By.CSS_SELECTOR, f".conv-item[data-id='{mine['id']}']"),
        10,
        "gone from list",
    )


def test_language_switch_and_settings_snippets(ui_server: Any, browser_factory: Any) -> None:
    english = browser_factory("en-US")
    open_app(english, ui_server.base_url)
    assert english.find_element(By.ID, "send").text == "Send"  # follows the browser language
    open_app(english, ui_server.base_url, "#/settings")
    assert "curl" in english.find_element(By.ID, "snippet-code").text
    assert ui_server.base_url + "/v1/chat/completions" in english.find_element(By.ID, "snippet-code").text
    from selenium.webdriver.support.ui import Select

    Select(english.find_element(By.ID, "language")).select_by_value("zh-CN")
    wait_for(lambda: english.find_element(By.ID, "view-title").text == "设置", 15, "the page in Chinese")
    assert english.find_element(By.CSS_SELECTOR, ".main-nav a[data-view='models']").text == "模型"
    open_app(english, ui_server.base_url)
    assert english.find_element(By.ID, "send").text == "发送"  # the choice is remembered


def test_phone_layout_hides_sidebar_behind_menu(
    ui_server: Any, browser_factory: Any, artifacts: Path
) -> None:
    phone = browser_factory("zh-CN")
    phone.set_window_size(390, 844)
    open_app(phone, ui_server.base_url, "#/settings")
    phone.save_screenshot(str(artifacts / "ui-settings-phone.png"))
    sidebar = phone.find_element(By.ID, "sidebar")
    assert sidebar.rect["x"] + sidebar.rect["width"] <= 0  # off screen until the menu opens it
    phone.find_element(By.ID, "sidebar-open").click()
    wait_for(lambda: phone.find_element(By.ID, "sidebar").rect["x"] >= 0, 5, "the sidebar to slide in")
    phone.find_element(By.CSS_SELECTOR, ".main-nav a[data-view='chat']").click()
    wait_for(lambda: phone.find_element(By.ID, "chat-input").is_displayed(), 5, "the chat screen")
    assert phone.find_element(By.ID, "chat-input").rect["width"] > 250
    wait_for(lambda: phone.find_element(By.ID, "sidebar").rect["x"] + phone.find_element(By.ID, "sidebar").rect["width"] <= 0, 5,
             "the sidebar to slide away")  # fmt: skip
    phone.save_screenshot(str(artifacts / "ui-chat-phone.png"))
