"""The models screen in the real Chromium: make a preset with the form (base, system prompt,
temperature, knowledge base none), see it listed with its base, chat with it, delete it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pages import no_alert, open_app, severe_console_errors, wait_for

from server_process import ServerProcess

By = pytest.importorskip("selenium.webdriver.common.by").By
Select = pytest.importorskip("selenium.webdriver.support.select").Select

BASE = "smollm2:135m"
HOSTILE = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def server(bendi_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return bendi_server_factory(env={"BENDI_CONTEXT_TOKENS": "1024"}, args=("--model", BASE))


def _rows(driver: Any) -> list[str]:
    script = "return [...document.querySelectorAll('#preset-list .preset-row')].map(r => r.dataset.name + '|' + r.children[1].textContent)"
    return list(driver.execute_script(script))


def test_make_list_use_and_delete_a_preset(server: ServerProcess, browser_factory: Callable[[str], Any],
                                           artifacts: Path) -> None:  # fmt: skip
    driver = browser_factory("en")
    open_app(driver, server.base_url, "#/models")
    wait_for(lambda: Select(driver.find_element(By.ID, "preset-base")).options, 20, "the base models")
    assert "Presets" in driver.find_element(By.ID, "presets").text and "No presets yet." in driver.find_element(
        By.ID, "preset-list").text  # fmt: skip
    driver.find_element(By.ID, "preset-name").send_keys("ui-safety")
    Select(driver.find_element(By.ID, "preset-base")).select_by_value(BASE)
    driver.find_element(By.ID, "preset-system").send_keys(f"You serve the safety office. {HOSTILE}")
    driver.find_element(By.ID, "preset-temperature").send_keys("0.2")
    driver.find_element(By.ID, "preset-num-ctx").send_keys("1024")
    driver.find_element(By.ID, "preset-create").click()
    wait_for(lambda: _rows(driver) == [f"ui-safety:latest|{BASE}"], 20, "the new preset in the list")
    driver.save_screenshot(str(artifacts / "ui-presets.png"))

    shown = httpx.post(server.base_url + "/api/show", json={"model": "ui-safety"}).json()
    assert shown["system"] == f"You serve the safety office. {HOSTILE}"
    assert "temperature                    0.2" in shown["parameters"] and "num_ctx" in shown["parameters"]
    # The preset is a model for every client: the chat screen's picker offers it, the API answers with it.
    chat = httpx.post(server.base_url + "/v1/chat/completions", timeout=120, json={
        "model": "ui-safety", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] >= 1

    # A name the server refuses: the error is shown, nothing is added.
    driver.find_element(By.ID, "preset-name").send_keys("../bad")
    driver.find_element(By.ID, "preset-create").click()
    wait_for(lambda: "preset name" in driver.find_element(By.ID, "toasts").text, 10, "the error toast")
    assert len(_rows(driver)) == 1

    wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, "#toasts .toast"), 15, "the toasts to go")
    driver.find_element(By.CSS_SELECTOR, "#preset-list .preset-row button").click()
    driver.switch_to.alert.accept()
    wait_for(lambda: _rows(driver) == [], 20, "the preset removed from the list")
    assert "ui-safety:latest" not in [
        m["name"] for m in httpx.get(server.base_url + "/api/tags").json()["models"]
    ]
    assert driver.execute_script("return window.__pwned === undefined") and no_alert(driver)
    assert severe_console_errors(driver, allowed=("/api/create",)) == []


def test_the_form_speaks_chinese(server: ServerProcess, browser_factory: Callable[[str], Any]) -> None:
    driver = browser_factory("zh-CN")
    open_app(driver, server.base_url, "#/models")
    card = wait_for(lambda: driver.find_element(By.ID, "presets"), 20, "the presets card")
    assert "预设" in card.text and "创建预设" in driver.find_element(By.ID, "preset-create").text
    assert "基础模型" in card.text and "系统提示词" in card.text
