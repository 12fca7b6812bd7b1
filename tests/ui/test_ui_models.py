"""Models and hardware screens: installed models, a pull with live progress that survives a reload
(against the store tests' local fake hub, throttled so progress is visible), and the advisor panel."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pages import open_app, wait_for

By = pytest.importorskip("selenium.webdriver.common.by").By

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from fakehub import FakeHub  # noqa: E402

REPO = "bendi-test/SmolLM2-GGUF"
FILE = "SmolLM2-135M-Instruct-Q4_1.gguf"
REF = f"hf:{REPO}/{FILE}"


@pytest.fixture(scope="module")
def hub(smollm2_path: Path) -> Iterator[FakeHub]:
    with FakeHub() as running:
        running.state.add(REPO, FILE, smollm2_path)  # the real GGUF, so the pulled model is valid
        running.state.throttle_bytes_per_s = 25e6  # ~4 s for the 98 MB file: slow enough to watch
        yield running


@pytest.fixture(scope="module")
def hub_server(bendi_server_factory: Callable[..., Any], hub: FakeHub) -> Any:
    return bendi_server_factory(env={**hub.settings_env(), "BENDI_DOWNLOAD_CONNECTIONS": "1"})


def _progress(driver: Any) -> float:
    bar = driver.find_element(By.CSS_SELECTOR, ".pull-row[data-model] .progress > i")
    return float(bar.get_attribute("style").split("width:")[1].split("%")[0])


def test_pull_progress_survives_reload(hub_server: Any, browser: Any, artifacts: Path) -> None:
    base = hub_server.base_url
    open_app(browser, base, "#/models")
    wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#installed-models .model-row"), 20, "installed models"
    )
    browser.find_element(By.ID, "pull-name").send_keys(REF)
    browser.find_element(By.ID, "pull-start").click()
    first = wait_for(lambda: (p := _progress(browser)) > 0 and p, 30, "the progress bar to move")
    detail = browser.find_element(By.CSS_SELECTOR, ".pull-row .pull-detail").text
    assert "MB" in detail and "%" in detail
    browser.save_screenshot(str(artifacts / "ui-models-pulling.png"))
    # A reload attaches to the same pull on the server: the bar is back and keeps moving.
    browser.refresh()
    open_app(browser, base, "#/models")
    wait_for(lambda: _progress(browser) > first or "success" in browser.find_element(By.CSS_SELECTOR, ".pull-row").get_attribute("data-status"),
             30, "progress after the reload")  # fmt: skip
    wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, ".pull-row").get_attribute("data-status") == "success",
        60,
        "the pull to finish",
    )
    pulls = httpx.get(base + "/v1/pulls").json()["data"]
    assert pulls[0]["status"] == "success" and pulls[0]["completed_bytes"] == pulls[0]["total_bytes"]
    names = httpx.get(base + "/api/tags").json()["models"]
    pulled = [m["name"] for m in names if m["name"] != "smollm2:135m"]
    assert pulled, names
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"#installed-models .model-row[data-name='{pulled[0]}']"), 20,
             "the pulled model in the installed list")  # fmt: skip
    browser.execute_script("document.getElementById('view-models').scrollTop = 0")
    browser.save_screenshot(str(artifacts / "ui-models.png"))


def test_hardware_panel_shows_doctor_and_plan(hub_server: Any, browser: Any, artifacts: Path) -> None:
    open_app(browser, hub_server.base_url, "#/hardware")
    machine = wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, "#hw-machine .grid"), 30, "the machine card"
    )
    doctor = httpx.get(hub_server.base_url + "/v1/hardware").json()
    assert doctor["hardware"]["cpu"]["model"] in machine.text
    rows = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#hw-plan .plan-row"), 30, "the ranked plan"
    )
    plan = httpx.get(hub_server.base_url + "/v1/plan").json()
    assert [r.get_attribute("data-model") for r in rows] == [p["model"] for p in plan["plans"]]
    browser.save_screenshot(str(artifacts / "ui-hardware.png"))
    assert any(r.get_attribute("data-model").startswith("deepseek-r1") for r in rows)
    browser.find_element(By.ID, "plan-model").send_keys("deepseek-r1:671b")
    browser.find_element(By.CSS_SELECTOR, "#plan-ctx").send_keys("8192")
    browser.find_element(By.CSS_SELECTOR, "#plan-ctx").submit()
    one = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".plan-one"), 20, "one model's plan")
    assert "✗" in one.text  # the full 671B does not fit this machine
    browser.save_screenshot(str(artifacts / "ui-hardware-plan-one.png"))
