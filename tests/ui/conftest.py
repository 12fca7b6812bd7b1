"""Fixtures for the web-UI tests: Debian's headless Chromium driven by Selenium, one real server."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def ui_server(bendi_server_factory: Callable[..., object]) -> object:
    """A real `bendi serve` with the bundled model preloaded (the UI's only backend)."""
    return bendi_server_factory(args=("--model", "smollm2:135m"))


def _make_driver(language: str) -> object:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    # Never let Selenium Manager download a browser or driver: the system ones or nothing.
    os.environ["SE_OFFLINE"] = "true"
    profile = tempfile.mkdtemp(prefix="bendi-ui-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,860", f"--user-data-dir={profile}",
                 f"--lang={language}"):  # fmt: skip
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver._bendi_profile = profile  # type: ignore[attr-defined]
    return driver


@pytest.fixture(scope="module")
def browser_factory() -> Iterator[Callable[[str], object]]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian chromium and chromium-driver are not installed")
    drivers: list[object] = []

    def make(language: str = "zh-CN") -> object:
        driver = _make_driver(language)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.quit()  # type: ignore[attr-defined]
        shutil.rmtree(driver._bendi_profile, ignore_errors=True)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def browser(browser_factory: Callable[[str], object]) -> object:
    return browser_factory("zh-CN")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed UI test leaves what the browser showed (a screenshot in test-artifacts/, and the
    page's text and console in the report), so a failure seen once in CI can be read afterwards."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    driver = getattr(item, "funcargs", {}).get("browser")
    if report.when != "call" or not report.failed or driver is None:
        return
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"failed-{item.name}.png"))
        text = driver.execute_script("return location.href + '\\n' + document.body.innerText")
        console = "\n".join(str(entry) for entry in driver.get_log("browser"))
    except Exception as exc:  # the browser itself may be what failed
        text, console = f"(could not read the page: {exc})", ""
    report.sections.append(("browser page", str(text)[-4000:]))
    report.sections.append(("browser console", console[-4000:]))
