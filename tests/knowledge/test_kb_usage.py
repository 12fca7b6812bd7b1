"""Token counts of knowledge-base answers, exactly as plain models give them (issue 17): the OpenAI
stream's final usage chunk with stream_options.include_usage, the non-streaming usage, and Ollama's
eval counts, through the official clients against a real `bendi serve`."""

from __future__ import annotations

from typing import Any

import pytest
from kb_testing import KbServer

QUESTION = "矿山建设工程的安全设施必须和主体工程同时设计吗？"
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def server(mining_law_server: KbServer) -> KbServer:
    return mining_law_server


def _request(**extra: Any) -> dict[str, Any]:
    return {"model": "kb:mining", "max_tokens": MAX_TOKENS, "temperature": 0,
            "messages": [{"role": "user", "content": QUESTION}], **extra}  # fmt: skip


def test_openai_stream_ends_with_the_usage_chunk_of_the_same_answer(server: KbServer) -> None:
    import openai

    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused")
    chunks = list(
        client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **_request())
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in chunks[:-1])  # usage only in the final chunk, as OpenAI does
    usage = last.usage
    # The grounded prompt holds the retrieved articles: far more than the question's own tokens.
    assert usage.prompt_tokens > 100 and 0 < usage.completion_tokens <= MAX_TOKENS
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["length"], ["stop"])
    if finish == ["length"]:
        assert usage.completion_tokens == MAX_TOKENS
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    # The same question, greedy, without streaming: the same answer and the same counts.
    whole = client.chat.completions.create(**_request())
    assert whole.usage is not None
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert whole.choices[0].message.content == streamed.strip()
    assert whole.choices[0].finish_reason == finish[0]

    # Without include_usage the stream carries no usage, like every other model's.
    plain = list(client.chat.completions.create(stream=True, **_request()))
    assert all(c.usage is None for c in plain) and plain[-1].choices

    # A refusal calls no model: the usage chunk is there, with zeros.
    refused = list(client.chat.completions.create(
        stream=True, stream_options={"include_usage": True},
        **_request(messages=[{"role": "user", "content": "巴黎埃菲尔铁塔有多高？"}])))  # fmt: skip
    assert refused[-1].usage is not None and refused[-1].usage.total_tokens == 0


def test_ollama_chat_reports_eval_counts(server: KbServer) -> None:
    import ollama
    import openai

    reference = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused").chat.completions.create(
        **_request()
    )
    assert reference.usage is not None
    client = ollama.Client(host=server.base_url)
    options = {"num_predict": MAX_TOKENS, "temperature": 0}
    messages = [{"role": "user", "content": QUESTION}]
    reply = client.chat(model="kb:mining", messages=messages, options=options)
    assert reply.prompt_eval_count == reference.usage.prompt_tokens
    assert reply.eval_count == reference.usage.completion_tokens
    assert reply.done_reason == ("length" if reference.choices[0].finish_reason == "length" else "stop")
    assert reply.eval_duration and reply.eval_duration > 0 and reply.prompt_eval_duration
    assert reply.total_duration and reply.total_duration >= reply.eval_duration + reply.prompt_eval_duration
    parts = list(client.chat(model="kb:mining", messages=messages, options=options, stream=True))
    assert parts[-1].done and parts[-1].eval_count == reply.eval_count
    assert parts[-1].prompt_eval_count == reply.prompt_eval_count
    assert all(not p.done for p in parts[:-1])
