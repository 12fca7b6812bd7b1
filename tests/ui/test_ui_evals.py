"""Evaluation reports over HTTP and in the real Chromium: a real `bendi eval` run (SmolLM2, a small
suite whose file name is hostile markup) saved in the server's home is listed by GET /api/evals,
served whole and as a self-contained HTML page, and shown on the models screen, escaped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pages import open_app, severe_console_errors, wait_for

from server_process import ServerProcess

By = pytest.importorskip("selenium.webdriver.common.by").By

BASE = "smollm2:135m"
HOSTILE = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def server_with_report(bendi_server_factory: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
                       ) -> tuple[ServerProcess, dict[str, Any]]:  # fmt: skip
    server = bendi_server_factory(env={"BENDI_CONTEXT_TOKENS": "1024"})
    suite = tmp_path_factory.mktemp("suite") / f"{HOSTILE}.jsonl"
    suite.write_text(
        '{"question": "What should a miner wear underground?", "reference": "A helmet and a lamp."}\n'
        '{"question": "What is the capital of the mine?", "answerable": false}\n',
        encoding="utf-8",
    )
    env = dict(os.environ, BENDI_HOME=str(server.log_path.parent), BENDI_THREADS="2")
    bendi = str(Path(sys.executable).parent / "bendi")
    done = subprocess.run([bendi, "eval", str(suite), "--model", BASE, "--max-tokens", "16", "--json"],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return server, json.loads(done.stdout)


def test_reports_over_http(server_with_report: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, report = server_with_report
    listed = httpx.get(server.base_url + "/api/evals", timeout=30).json()["reports"]
    assert [r["id"] for r in listed] == [report["id"]]
    assert listed[0]["models"][BASE]["metrics"]["questions"] == 2
    whole = httpx.get(f"{server.base_url}/api/evals/{report['id']}", timeout=30).json()
    assert whole["questions"][0]["question"] == "What should a miner wear underground?"
    assert whole["models"][BASE]["answers"][0]["answer"]  # the model's own answer is kept
    page = httpx.get(f"{server.base_url}/api/evals/{report['id']}/html", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert HOSTILE not in page.text and "&lt;img src=x" in page.text  # the suite's name, escaped
    for bad in ("../../config", "20261206-000000-00000000", "x" * 300):
        assert httpx.get(f"{server.base_url}/api/evals/{bad}", timeout=30).status_code == 404


def test_reports_on_the_models_screen(server_with_report: tuple[ServerProcess, dict[str, Any]],
                                      browser_factory: Callable[[str], Any], artifacts: Path) -> None:  # fmt: skip
    server, report = server_with_report
    driver = browser_factory("en")
    open_app(driver, server.base_url, "#/models")
    card = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, f"#evals .eval-report[data-id='{report['id']}']"),
                    20, "the report on the models screen")  # fmt: skip
    row = card.find_element(By.CSS_SELECTOR, f".eval-model[data-model='{BASE}']")
    assert "tok/s" in row.text and "%" in row.text
    assert HOSTILE in card.text  # shown as text, never as markup
    driver.save_screenshot(str(artifacts / "ui-evals.png"))
    card.find_element(By.CSS_SELECTOR, "button.eval-html").click()  # fetched with the page's credentials
    assert driver.execute_script("return window.__pwned === undefined")
    assert severe_console_errors(driver) == []
