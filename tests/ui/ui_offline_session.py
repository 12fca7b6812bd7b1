"""Inside a network namespace with no route (test_ui_offline.py starts it there): `bendi serve` and the web UI
in Debian's Chromium; every URL the page requested, its console and its headers go to a JSON report.
Usage: ui_offline_session.py REPORT.json PORT SCREENSHOT.png"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "ops")]
from offline_session import loopback_up, no_route  # noqa: E402
from pages import limit_answer_length, open_app, wait_for  # noqa: E402

BENDI = str(Path(sys.executable).parent / "bendi")
UI_PATHS = ("/", "/js/app.js", "/css/app.css", "/icons/bendi.svg", "/favicon.ico", "/i18n/zh-CN.json")
VIEWS = ("#/chat", "#/knowledge", "#/models", "#/hardware", "#/settings")


def _driver(profile: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--window-size=1280,860", f"--user-data-dir={profile}", "--lang=zh-CN"):  # fmt: skip
        options.add_argument(flag)
    # Every request the page makes shows up in the DevTools network events of the performance log.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    driver.get("about:blank")
    driver.get_log("performance")  # drop the browser's own start page (chrome://new-tab-page...)
    return driver


def _requested_urls(driver: Any) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _chat(driver: Any) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    picker = wait_for(lambda: driver.find_element(By.ID, "model-picker"), what="model picker")
    wait_for(lambda: "smollm2:135m" in picker.text, what="the installed model in the picker")
    limit_answer_length(driver, 16)
    box = driver.find_element(By.ID, "chat-input")
    box.send_keys("Say hello.")
    box.send_keys(Keys.ENTER)
    answer = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, ".msg.assistant:not(.streaming) .bubble .md").text.strip(),
        180, "the answer",
    )  # fmt: skip
    return str(answer)


def main() -> int:
    report_path, port, screenshot = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    loopback_up()
    report: dict[str, Any] = {"no_route": no_route()}
    base = f"http://127.0.0.1:{port}"
    home = Path(os.environ["BENDI_HOME"])
    log = open(home / "serve.log", "wb")  # noqa: SIM115  (closed at the end)
    server = subprocess.Popen([BENDI, "serve", "--port", str(port), "--model", "smollm2:135m"],
                              stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    profile = tempfile.mkdtemp(prefix="bendi-ui-offline-")
    driver = None
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "bendi serve did not come up"
            try:
                if httpx.get(base + "/api/ps", timeout=2).json().get("models"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        report["headers"] = {
            path: dict(httpx.get(base + path, timeout=10).headers) for path in UI_PATHS
        }  # fmt: skip
        driver = _driver(profile)
        open_app(driver, base, "#/chat")
        report["answer"] = _chat(driver)
        for view in VIEWS:
            driver.get(f"{base}/{view}")
            wait_for(lambda: driver.execute_script("return document.body.dataset.ready === '1'"), 20, view)
            time.sleep(0.5)  # let the view's own requests go out
        report["fonts"] = driver.execute_script(
            "return Array.from(document.fonts).map(f => f.family + ' ' + f.status)"
        )
        report["stylesheets"] = driver.execute_script(
            "return Array.from(document.styleSheets).map(s => s.href)"
        )
        report["urls"] = _requested_urls(driver)
        report["console"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        driver.save_screenshot(str(screenshot))
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        report_path.write_text(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
