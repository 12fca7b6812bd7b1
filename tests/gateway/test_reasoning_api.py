"""Reasoning through the OpenAI API: reasoning_content / reasoning / raw, stream and non-stream.

No DeepSeek-R1 model can be had here, so a replay engine streams a recorded R1 output (in small
chunks, splitting the tags) behind the real gateway and a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from r1_replay import RECORDED, start_replay_server


@pytest.fixture()
def server_url(tmp_path: Path, port: int) -> Iterator[str]:
    server, thread = start_replay_server(tmp_path, port)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_non_stream_separates_reasoning_content(server_url: str) -> None:
    client = OpenAI(base_url=server_url + "/v1", api_key="x")
    message = (
        client.chat.completions.create(
            model="deepseek-r1:7b", messages=[{"role": "user", "content": "瓦斯?"}]
        )
        .choices[0]
        .message
    )
    assert message.content == RECORDED["content"]
    assert message.reasoning_content == RECORDED["reasoning"]  # type: ignore[attr-defined]
    assert "</think>" not in message.content and "<think>" not in message.content


def test_stream_deltas_never_mix_reasoning_into_content(server_url: str) -> None:
    client = OpenAI(base_url=server_url + "/v1", api_key="x")
    reasoning, content = [], []
    for chunk in client.chat.completions.create(
        model="r1", messages=[{"role": "user", "content": "?"}], stream=True
    ):
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is None:
            continue
        if getattr(delta, "reasoning_content", None):
            reasoning.append(delta.reasoning_content)  # type: ignore[attr-defined]
        if delta.content:
            content.append(delta.content)
    assert "".join(reasoning) == RECORDED["reasoning"]
    assert "".join(content) == RECORDED["content"]


def test_raw_format_keeps_the_tags_in_content(server_url: str) -> None:
    body = {"model": "r1", "messages": [{"role": "user", "content": "?"}], "reasoning_format": "raw"}
    message = httpx.post(server_url + "/v1/chat/completions", json=body).json()["choices"][0]["message"]
    assert message["content"].startswith("<think>\n")
    assert "</think>" in message["content"]
    assert "reasoning_content" not in message


def test_setting_switches_the_field_name_to_reasoning(tmp_path: Path, port: int) -> None:
    server, thread = start_replay_server(tmp_path, port, reasoning_field="reasoning")
    try:
        body = {"model": "r1", "messages": [{"role": "user", "content": "?"}]}
        message = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body).json()["choices"][0][
            "message"
        ]
        assert message["reasoning"] == RECORDED["reasoning"]
        assert "reasoning_content" not in message
    finally:
        server.should_exit = True
        thread.join(timeout=10)
