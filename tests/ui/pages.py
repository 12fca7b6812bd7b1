"""Small page helpers for the UI tests: waiting on the DOM, the API calls a test makes directly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout_s: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the element may not exist yet
            last_error = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last error: {last_error})")


def open_app(driver: Any, base_url: str, fragment: str = "") -> None:
    driver.get(f"{base_url}/{fragment}")
    wait_for(
        lambda: driver.execute_script("return document.body.dataset.ready === '1'"), 20, "the app to boot"
    )


def no_alert(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        _ = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def severe_console_errors(driver: Any, allowed: tuple[str, ...] = ()) -> list[str]:
    """Script errors and CSP violations; failed API calls the test expects are passed in `allowed`."""
    return [
        e["message"] for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)
    ]  # fmt: skip


def limit_answer_length(driver: Any, tokens: int) -> None:
    """Keep answers short on a busy 2-core machine, through the chat's own settings drawer."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.ID, "max-tokens")
    if not field.is_displayed():
        driver.find_element(By.ID, "chat-settings-toggle").click()
    field.clear()
    field.send_keys(str(tokens), Keys.TAB)


def wait_screen(driver: Any, screen: str, timeout_s: float = 20.0) -> None:
    """Team mode: wait until the page shows `login`, `password` (forced change) or `app`."""
    script = "return document.readyState === 'complete' && document.body.dataset.screen"
    wait_for(lambda: driver.execute_script(script) == screen, timeout_s, f"the {screen} screen")


def sign_in(driver: Any, username: str, password: str) -> None:
    """Fill in and send the login form (the caller waits for what should follow)."""
    from selenium.webdriver.common.by import By

    wait_screen(driver, "login")
    # The form is built after the page loads; a reload in flight can replace it, so retry.
    wait_for(lambda: driver.find_element(By.ID, "login-username").send_keys(username) or True, 10, "the form")
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()


def web_storage(driver: Any) -> str:
    """Everything the page keeps in localStorage and sessionStorage, as one string."""
    script = "return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    return str(driver.execute_script(script))
