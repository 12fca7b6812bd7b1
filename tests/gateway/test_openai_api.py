"""The official `openai` client against a real `bendi serve` with the real SmolLM2 model."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest
from openai import OpenAI

from client_leaves import post_and_leave

MODEL = "smollm2:135m"
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def client(bendi_server) -> OpenAI:  # type: ignore[no-untyped-def]
    # A bounded timeout turns an engine that hangs a request into a failure, not a stuck suite.
    return OpenAI(base_url=bendi_server.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_the_bundled_model(client: OpenAI) -> None:
    assert MODEL in [m.id for m in client.models.list().data]
    assert client.models.retrieve(MODEL).id == MODEL


def test_non_stream_chat_has_content_usage_and_length_finish(client: OpenAI) -> None:
    response = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=8, temperature=0)
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "length"
    assert response.usage is not None
    assert response.usage.completion_tokens == 8
    assert response.usage.total_tokens == response.usage.prompt_tokens + 8


def test_stream_chat_matches_non_stream_and_reports_usage(client: OpenAI) -> None:
    kwargs = dict(model=MODEL, messages=HELLO, max_tokens=24, temperature=0)
    whole = client.chat.completions.create(**kwargs).choices[0].message.content  # type: ignore[call-overload]
    pieces, usage, finish = [], None, None
    stream = client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs)  # type: ignore[call-overload]
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == whole
    assert usage is not None and usage.completion_tokens > 0
    assert finish in ("stop", "length")


def test_multi_turn_and_system_messages_are_used(client: OpenAI) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "My name is Lin."},
        {"role": "assistant", "content": "Hello Lin."},
        {"role": "user", "content": "What is my name?"},
    ]
    response = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5, temperature=0)  # type: ignore[arg-type]
    assert response.usage is not None and response.usage.prompt_tokens > 25


def test_stop_string_ends_with_stop_and_is_not_returned(client: OpenAI) -> None:
    free = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=30, temperature=0)
    text = free.choices[0].message.content or ""
    assert len(text) > 4
    stop = text[3:5]
    response = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=30, temperature=0, stop=[stop]
    )
    assert response.choices[0].finish_reason == "stop"
    assert stop not in (response.choices[0].message.content or "")
    assert text.startswith(response.choices[0].message.content or "")


def test_same_seed_gives_same_text(client: OpenAI) -> None:
    kwargs = dict(model=MODEL, messages=HELLO, max_tokens=20, temperature=1.0, top_p=0.95, seed=1234)
    first = client.chat.completions.create(**kwargs).choices[0].message.content  # type: ignore[call-overload]
    second = client.chat.completions.create(**kwargs).choices[0].message.content  # type: ignore[call-overload]
    assert first == second


def test_completions_endpoint(client: OpenAI) -> None:
    response = client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0
    )
    assert response.choices[0].text
    assert response.choices[0].finish_reason == "length"


def test_client_mistakes_get_openai_shaped_errors(bendi_server, client: OpenAI) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert not_found.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model=MODEL, messages=HELLO, n=2)
    assert "n=2" in str(too_many.value)
    with pytest.raises(openai.BadRequestError) as overflow:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "word " * 6000}])
    assert overflow.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert "context window is" in overflow.value.body["message"]  # type: ignore[index]
    bad = httpx.post(bendi_server.base_url + "/v1/chat/completions", content=b"{not json",
                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert bad.status_code == 400
    assert set(bad.json()["error"]) >= {"message", "type", "code"}
    wrong_type = httpx.post(
        bendi_server.base_url + "/v1/chat/completions", json={"model": MODEL, "messages": "hi"}
    )
    assert wrong_type.status_code == 400
    unknown_route = httpx.get(bendi_server.base_url + "/v1/nothing-here")
    assert unknown_route.status_code == 404 and "error" in unknown_route.json()


def test_health_answers_while_a_generation_runs(bendi_server, client: OpenAI) -> None:  # type: ignore[no-untyped-def]
    streaming, stop = threading.Event(), threading.Event()

    def long_generation() -> None:  # runs until told to stop (ignore_eos: no early end)
        stream = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2000, temperature=0,
                                                stream=True, extra_body={"ignore_eos": True})  # fmt: skip
        for _ in stream:
            streaming.set()
            if stop.is_set():
                break
        stream.close()

    worker = threading.Thread(target=long_generation)
    worker.start()
    try:
        assert streaming.wait(30), "the generation did not start"
        started = time.monotonic()
        health = httpx.get(bendi_server.base_url + "/health", timeout=5)
        assert health.status_code == 200
        assert time.monotonic() - started < 1.0
        assert worker.is_alive(), "the generation should still be running"
    finally:
        stop.set()
        worker.join(timeout=60)


def test_disconnected_stream_stops_its_generation(bendi_server) -> None:  # type: ignore[no-untyped-def]
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 2000, "temperature": 0.7, "stream": True}
    with httpx.stream(
        "POST", bendi_server.base_url + "/v1/chat/completions", json=body, timeout=30
    ) as response:
        for _ in zip(range(3), response.iter_lines(), strict=False):
            pass
    # The engine is free again at once: a new request gets its first token quickly instead of
    # queueing behind 2,000 tokens of an abandoned answer.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = scrape(bendi_server.base_url)
        if metrics["bendi_active_sequences"] == 0:
            break
        time.sleep(0.1)
    assert metrics["bendi_active_sequences"] == 0
    before = metrics["bendi_engine_generated_tokens_total"]
    time.sleep(0.5)
    assert scrape(bendi_server.base_url)["bendi_engine_generated_tokens_total"] == before


def scrape(base_url: str) -> dict[str, float]:
    """Values of the model-labelled gauges in /metrics for the bundled model."""
    values = {}
    for line in httpx.get(base_url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("bendi_") and f'model="{MODEL}"' in line and "_bucket" not in line:
            name = line.split("{", 1)[0]
            values[name] = float(line.rsplit(" ", 1)[1])
    return values


def test_penalties_change_a_greedy_answer(client: OpenAI) -> None:
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "List ten fruits."}], max_tokens=40,
                  temperature=0)  # fmt: skip
    plain = client.chat.completions.create(**kwargs).choices[0].message.content  # type: ignore[call-overload]
    penalised = client.chat.completions.create(presence_penalty=1.5, frequency_penalty=1.5, **kwargs)  # type: ignore[call-overload]
    assert penalised.choices[0].message.content
    assert penalised.choices[0].message.content != plain


def test_max_completion_tokens_stop_as_a_string_and_unknown_fields(client: OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_completion_tokens=3, temperature=0,
        extra_body={"logit_bias": {}, "parallel_tool_calls": False, "some_future_field": {"x": 1}},
    )  # fmt: skip
    assert response.usage is not None and response.usage.completion_tokens == 3
    free = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=20, temperature=0)
    text = free.choices[0].message.content or ""
    stop = text.split()[1]
    stopped = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=20, temperature=0, stop=stop
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == text[: text.index(stop)]


def test_streamed_completions_report_usage_and_end_with_done(bendi_server) -> None:  # type: ignore[no-untyped-def]
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 5, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    lines = [
        line
        for line in httpx.post(
            bendi_server.base_url + "/v1/completions", json=body, timeout=30
        ).text.splitlines()
        if line
    ]
    assert lines[-1] == "data: [DONE]"
    usage = json.loads(lines[-2].removeprefix("data: "))["usage"]
    assert usage["completion_tokens"] == 5
    assert json.loads(lines[-3].removeprefix("data: "))["choices"][0]["finish_reason"] == "length"


def test_langchain_chat_openai_invoke_and_stream(bendi_server) -> None:  # type: ignore[no-untyped-def]
    langchain_openai = pytest.importorskip("langchain_openai")
    llm = langchain_openai.ChatOpenAI(base_url=bendi_server.base_url + "/v1", api_key="unused", model=MODEL,
                                      max_tokens=6, temperature=0, max_retries=0)  # fmt: skip
    answer = llm.invoke("Say hello.")
    assert isinstance(answer.content, str) and answer.content
    streamed = "".join(str(part.content) for part in llm.stream("Say hello."))
    assert streamed == answer.content


def test_abandoned_non_stream_request_stops_its_generation(bendi_server) -> None:  # type: ignore[no-untyped-def]
    # ignore_eos: the answer cannot end on its own before the client gives up.
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 2000, "temperature": 0.7, "ignore_eos": True}
    post_and_leave(bendi_server.base_url, "/v1/chat/completions", body,
                   lambda: scrape(bendi_server.base_url)["bendi_active_sequences"] >= 1)  # fmt: skip
    deadline = time.monotonic() + 30  # generous: a loaded machine may still be processing the prompt
    while time.monotonic() < deadline and scrape(bendi_server.base_url)["bendi_active_sequences"] != 0:
        time.sleep(0.1)
    assert scrape(bendi_server.base_url)["bendi_active_sequences"] == 0
