"""The official `ollama` Python client against a real `bendi serve` with the real model."""

from __future__ import annotations

import time

import httpx
import ollama
import pytest

MODEL = "smollm2:135m"


@pytest.fixture(scope="module")
def client(bendi_server) -> ollama.Client:  # type: ignore[no-untyped-def]
    return ollama.Client(host=bendi_server.base_url)


def test_version_tags_and_show(bendi_server, client: ollama.Client) -> None:  # type: ignore[no-untyped-def]
    assert httpx.head(bendi_server.base_url + "/").status_code == 200  # the ollama CLI's heartbeat
    version = httpx.get(bendi_server.base_url + "/api/version").json()["version"]
    assert tuple(int(x) for x in version.split(".")) >= (0, 5, 0)  # clients gate features on it
    assert MODEL in [m.model for m in client.list().models]
    shown = client.show(MODEL)
    assert "completion" in (shown.capabilities or [])
    assert shown.details is not None and shown.details.quantization_level == "Q4_1"
    assert "<|im_start|>" in (shown.template or "")


def test_chat_non_stream_has_ollama_counters(client: ollama.Client) -> None:
    response = client.chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                           options={"num_predict": 6, "temperature": 0})  # fmt: skip
    assert response.done and response.done_reason in ("stop", "length")
    assert response.message.role == "assistant" and response.message.content
    assert response.eval_count and response.eval_count <= 6
    assert response.prompt_eval_count and response.prompt_eval_count > 5
    assert response.total_duration and response.total_duration > 0


def test_chat_stream_equals_non_stream(client: ollama.Client) -> None:
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "Name a colour."}],
                  options={"num_predict": 12, "temperature": 0})  # fmt: skip
    whole = client.chat(**kwargs).message.content  # type: ignore[arg-type]
    parts = list(client.chat(stream=True, **kwargs))  # type: ignore[arg-type]
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.message.content or "" for p in parts) == whole


def test_generate_with_options_seed_and_stop(client: ollama.Client) -> None:
    options = {"num_predict": 20, "temperature": 0.9, "seed": 42}
    first = client.generate(model=MODEL, prompt="Tell me about gas.", options=options).response
    second = client.generate(model=MODEL, prompt="Tell me about gas.", options=options).response
    assert first == second
    stop = first[2:4]
    stopped = client.generate(model=MODEL, prompt="Tell me about gas.", options=options | {"stop": [stop]})
    assert stop not in stopped.response and stopped.done_reason == "stop"


def test_think_false_hides_reasoning_field(client: ollama.Client) -> None:
    response = client.chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}], think=False,
                           options={"num_predict": 4})  # fmt: skip
    assert response.message.thinking is None


def test_embed_and_legacy_embeddings(client: ollama.Client) -> None:
    result = client.embed(model=MODEL, input=["煤矿", "coal mine"])
    assert len(result.embeddings) == 2 and len(result.embeddings[0]) == 576
    legacy = client.embeddings(model=MODEL, prompt="瓦斯")
    assert len(legacy.embedding) == 576


def test_ps_and_keep_alive_zero_unloads(client: ollama.Client) -> None:
    client.generate(model=MODEL, prompt="Hi", options={"num_predict": 2})
    assert MODEL in [m.model for m in client.ps().models]
    client.generate(model=MODEL, prompt="", keep_alive=0)
    deadline = time.monotonic() + 5
    while MODEL in [m.model for m in client.ps().models] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert MODEL not in [m.model for m in client.ps().models]
    client.generate(model=MODEL, prompt="", keep_alive="10m")  # loads it again
    assert MODEL in [m.model for m in client.ps().models]


def test_errors_are_ollama_shaped(bendi_server, client: ollama.Client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="no-such:model", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404
    bad = httpx.post(bendi_server.base_url + "/api/chat", json={"model": MODEL, "messages": "x"})
    assert bad.status_code == 400 and isinstance(bad.json()["error"], str)
    bad_keep = httpx.post(
        bendi_server.base_url + "/api/generate", json={"model": MODEL, "prompt": "x", "keep_alive": "soon"}
    )
    assert bad_keep.status_code == 400 and "keep_alive" in bad_keep.json()["error"]
