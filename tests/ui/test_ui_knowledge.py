"""Knowledge bases in the browser: create, upload a real Chinese DOCX, chat with citations, XSS names."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from pages import limit_answer_length, no_alert, open_app, wait_for

By = pytest.importorskip("selenium.webdriver.common.by").By
Keys = pytest.importorskip("selenium.webdriver.common.keys").Keys

DOCX = Path("rag-eval-data/import-fixtures-cn/coalqa/煤矿安全技术措施.docx")
XSS_NAME = "<img src=x onerror=window.__pwned=1>.md"  # browsers send '\"' as %22 in file names


def _docs(base: str, kb: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = httpx.get(f"{base}/v1/knowledge-bases/{kb}/documents").json()["data"]
    return data


def test_upload_docx_and_chat_with_citations(ui_server: Any, browser: Any, shared_dir: Path, tmp_path: Path,
                                             artifacts: Path) -> None:  # fmt: skip
    base = ui_server.base_url
    open_app(browser, base, "#/knowledge")
    name_box = wait_for(lambda: browser.find_element(By.ID, "kb-new-name"), what="the create form")
    name_box.send_keys("coal-safety")
    browser.find_element(By.ID, "kb-create").click()
    wait_for(
        lambda: "coal-safety" in browser.find_element(By.ID, "kb-detail").text, 15, "the new knowledge base"
    )
    # A real Chinese DOCX, and a Markdown file whose name is an XSS payload.
    hostile = tmp_path / XSS_NAME
    hostile.write_text("# 通风\n\n第一条 矿井必须有完整的独立通风系统。\n", encoding="utf-8")
    docx = tmp_path / DOCX.name
    shutil.copy(shared_dir / DOCX, docx)
    browser.find_element(By.ID, "kb-file-input").send_keys(f"{docx}\n{hostile}")
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".upload-row")) == 2, 15, "two upload rows")

    def indexed() -> bool:
        docs = _docs(base, "coal-safety")
        return len(docs) == 2 and all(d["status"] == "indexed" for d in docs)

    wait_for(indexed, 90, "both documents indexed")
    # Read the table in one script call: it re-renders while the statuses update.
    script = "return [...document.querySelectorAll('.doc-row[data-status=indexed] .doc-name')].map(e => e.textContent)"
    names = wait_for(
        lambda: (found := browser.execute_script(script)) and len(found) == 2 and found, 20, "indexed rows"
    )
    assert XSS_NAME in names and DOCX.name in names  # the hostile name is text
    assert browser.find_elements(By.CSS_SELECTOR, "#kb-detail img") == []
    assert browser.execute_script("return window.__pwned === undefined") and no_alert(browser)
    browser.save_screenshot(str(artifacts / "ui-knowledge.png"))

    browser.find_element(By.ID, "kb-chat").click()
    wait_for(
        lambda: browser.find_element(By.ID, "kb-picker").get_attribute("value") == "coal-safety",
        10,
        "KB chosen",
    )
    limit_answer_length(browser, 48)
    box = browser.find_element(By.ID, "chat-input")
    box.send_keys("进风通风系统的安全技术措施有哪些？")
    box.send_keys(Keys.ENTER)

    def click_docx_chip() -> bool:
        # Found and clicked in one step: the message re-renders when the answer is saved, which makes
        # elements found earlier stale (wait_for retries on that).
        chips = browser.find_elements(By.CSS_SELECTOR, ".msg.assistant:not(.streaming) .citations .chip")
        chip = next((c for c in chips if DOCX.name in c.text), None)
        if chip is None:
            return False
        chip.click()
        return True

    wait_for(click_docx_chip, 240, "a citation chip for the DOCX")
    dialog = wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, ".overlay .dialog"), 10, "the passage viewer"
    )
    assert DOCX.name in dialog.text
    passage = dialog.find_element(By.CSS_SELECTOR, ".passage").text
    assert "通风" in passage or "进风" in passage
    browser.save_screenshot(str(artifacts / "ui-knowledge-citation.png"))
    dialog.find_element(By.CSS_SELECTOR, "button").click()
    conv_id = browser.execute_script("return location.hash.split('/')[2]")
    stored = wait_for(lambda: [m for m in httpx.get(f"{base}/v1/conversations/{conv_id}").json()["messages"]
                               if m["role"] == "assistant"], 20, "the stored answer")  # fmt: skip
    assert stored[0]["citations"] and stored[0]["citations"][0]["file"]
    assert httpx.get(f"{base}/v1/conversations/{conv_id}").json()["knowledge_base"] == "coal-safety"
