"""Presets over HTTP on a real `bendi serve` with the bundled SmolLM2, through the official `ollama` and
`openai` clients: create / show / list / delete, and proof that a preset's SYSTEM, MESSAGE turns and
PARAMETERs reach the engine while the base's one loaded engine serves every preset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import ollama
import openai
import pytest

from server_process import ServerProcess

BASE = "smollm2:135m"
SYSTEM = "You are the safety office's assistant at a coal mine. Answer in one short sentence and never guess."
QUESTION = "Name one thing a miner should check before going underground."


@pytest.fixture(scope="module")
def server(bendi_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return bendi_server_factory(env={"BENDI_CONTEXT_TOKENS": "2048"}, args=("--model", BASE))


@pytest.fixture(scope="module")
def ol(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.base_url, timeout=240)


@pytest.fixture(scope="module")
def oa(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", timeout=240)


def _create(ol: ollama.Client, name: str, **fields: Any) -> list[str]:
    return [line.status or "" for line in ol.create(model=name, from_=BASE, stream=True, **fields)]


def test_create_show_list_delete_with_the_ollama_client(ol: ollama.Client, oa: openai.OpenAI,
                                                        server: ServerProcess) -> None:  # fmt: skip
    statuses = _create(ol, "safety", system=SYSTEM, parameters={"temperature": 0.2, "num_ctx": 1024,
                       "stop": ["<|im_end|>"]}, messages=[{"role": "user", "content": "hi"},
                       {"role": "assistant", "content": "Hello."}])  # fmt: skip
    assert statuses[0] == f"using base model {BASE}" and statuses[-1] == "success"
    assert "note: parameter num_ctx is kept but not applied per request" in statuses
    shown = ol.show("safety")
    assert shown.modelfile is not None and f"FROM {BASE}" in shown.modelfile and SYSTEM in shown.modelfile
    assert 'MESSAGE assistant """Hello."""' in shown.modelfile
    assert (
        shown.parameters is not None
        and "temperature" in shown.parameters
        and "<|im_end|>" in shown.parameters
    )
    assert shown.template and "<|im_start|>" in shown.template  # the base model's own template
    assert (
        shown.details is not None and shown.details.parent_model == BASE and shown.details.family == "llama"
    )
    raw = httpx.post(
        server.base_url + "/api/show", json={"model": "safety"}
    ).json()  # fields the client drops
    assert raw["system"] == SYSTEM and raw["messages"][1] == {"role": "assistant", "content": "Hello."}
    listed = {m.model: m for m in ol.list().models}
    assert (
        listed["safety:latest"].details is not None and listed["safety:latest"].details.parent_model == BASE
    )
    assert listed["safety:latest"].size == listed[BASE].size
    assert "safety:latest" in [m.id for m in oa.models.list().data]
    assert oa.models.retrieve("safety").id == "safety:latest"
    ol.delete("safety")
    assert "safety:latest" not in [m.model for m in ol.list().models]
    with pytest.raises(ollama.ResponseError) as gone:
        ol.show("safety")
    assert gone.value.status_code == 404
    assert ol.show(BASE).details is not None  # the base is untouched


def test_the_legacy_modelfile_form_and_non_streaming_reply(server: ServerProcess) -> None:
    text = f'FROM {BASE}\nPARAMETER stop <|im_end|>\nTEMPLATE """{{{{ .Prompt }}}}"""\nSYSTEM hello\n'
    answer = httpx.post(server.base_url + "/api/create", timeout=60,
                        json={"name": "legacy", "modelfile": text, "stream": False})  # fmt: skip
    assert answer.status_code == 200 and answer.json() == {"status": "success"}
    shown = httpx.post(server.base_url + "/api/show", json={"model": "legacy"}).json()
    assert shown["template"] == "{{ .Prompt }}" and shown["system"] == "hello"
    assert shown["modelfile_original"] == text
    assert (
        httpx.request("DELETE", server.base_url + "/api/delete", json={"model": "legacy"}).status_code == 200
    )


def _chat(oa: openai.OpenAI, model: str, messages: list[dict[str, str]], **fields: Any) -> Any:
    return oa.chat.completions.create(model=model, messages=messages, **fields)  # type: ignore[arg-type]


def test_system_turns_and_parameters_reach_the_engine(ol: ollama.Client, oa: openai.OpenAI,
                                                      server: ServerProcess) -> None:  # fmt: skip
    user = [{"role": "user", "content": QUESTION}]
    _create(ol, "terse", system=SYSTEM, parameters={"num_predict": 5, "temperature": 0})
    with_system = [{"role": "system", "content": SYSTEM}, *user]
    base = _chat(oa, BASE, with_system, max_tokens=5, temperature=0)
    preset = _chat(oa, "terse", user)  # no max_tokens: the preset's num_predict applies
    # The SYSTEM prompt went in: the same prompt as the base given that system message (SmolLM2's
    # template puts a default system prompt of its own in otherwise, a different length).
    assert preset.usage.prompt_tokens == base.usage.prompt_tokens
    assert preset.usage.prompt_tokens != _chat(oa, BASE, user, max_tokens=1).usage.prompt_tokens
    assert preset.usage.completion_tokens == 5 and preset.choices[0].finish_reason == "length"
    own_system = [{"role": "system", "content": "Be brief."}, *user]
    assert _chat(oa, "terse", own_system, max_tokens=3).usage.prompt_tokens == _chat(
        oa, BASE, own_system, max_tokens=3).usage.prompt_tokens  # the request's own system wins  # fmt: skip
    assert _chat(oa, "terse", user, max_tokens=3).usage.completion_tokens == 3  # the request overrides

    # Stop strings are merged: the base's greedy answer, cut where the preset's stop string appears.
    full = _chat(oa, BASE, user, max_tokens=12, temperature=0).choices[0].message.content
    words = full.split()
    assert len(words) >= 3, full
    _create(ol, "stopper", parameters={"stop": [words[2]], "temperature": 0})
    cut = _chat(oa, "stopper", user, max_tokens=12)
    assert cut.choices[0].finish_reason == "stop" and words[2] not in cut.choices[0].message.content
    assert full.startswith(cut.choices[0].message.content.strip())

    # The Ollama API: the same defaults (prompt tokens, num_predict) on /api/chat and /api/generate.
    base_chat = ol.chat(model=BASE, messages=with_system, options={"num_predict": 2})
    chat = ol.chat(model="terse", messages=user)
    assert chat.prompt_eval_count == base_chat.prompt_eval_count and chat.eval_count == 5
    _create(ol, "fewshot", messages=[{"role": "user", "content": "What is PPE?"},
                                     {"role": "assistant", "content": "Personal protective equipment."}])  # fmt: skip
    plain = ol.generate(model=BASE, prompt=QUESTION, options={"num_predict": 2})
    shot = ol.generate(model="fewshot", prompt=QUESTION, options={"num_predict": 2})
    assert shot.prompt_eval_count > plain.prompt_eval_count + 10  # the MESSAGE turns went in

    # Every preset above ran on the base's one engine: one load.
    assert [m.model for m in ol.ps().models] == [BASE]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"model": "../../etc/passwd", "from": BASE}, 400, "preset name"),
        ({"model": "bad:name:x", "from": BASE}, 400, "at most one ':'"),
        ({"model": "x", "from": "deepseek-r1:671b"}, 404, "FROM 'deepseek-r1:671b'"),
        ({"model": "x"}, 400, "which model the preset is based on"),
        ({"model": BASE, "from": BASE}, 409, "installed model"),
        (
            {"model": "x", "from": BASE, "parameters": {"temprature": 1}},
            400,
            "unknown PARAMETER 'temprature'",
        ),
        ({"model": "x", "from": BASE, "parameters": {"temperature": "hot"}}, 400, "expected a number"),
        ({"model": "x", "from": BASE, "files": {"a.gguf": "sha256:00"}}, 400, "uploaded model or adapter"),
        ({"model": "x", "from": BASE, "messages": [{"role": "robot", "content": "hi"}]}, 400, "role 'robot'"),
        ({"name": "x", "modelfile": "FROM /etc/passwd.gguf\n"}, 400, "Over the API"),
        ({"name": "x", "modelfile": f"FROM {BASE}\nADAPTER ./lora.gguf\n"}, 400, "Over the API"),
        ({"name": "x", "modelfile": f"FROM {BASE}\nPARAMETER temperature 0.1\nBOGUS\n"}, 400, "line 3"),
        ({"model": "x", "from": BASE, "knowledge_base": "no-such-kb"}, 404, "no knowledge base"),
    ],
)
def test_bad_input_gets_clear_errors_and_creates_nothing(server: ServerProcess, body: dict[str, Any],
                                                         status: int, words: str) -> None:  # fmt: skip
    answer = httpx.post(server.base_url + "/api/create", json=body, timeout=60)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    names = [m["name"] for m in httpx.get(server.base_url + "/api/tags").json()["models"]]
    assert "x:latest" not in names


def test_a_ten_megabyte_modelfile_is_refused(server: ServerProcess) -> None:
    text = f'FROM {BASE}\nSYSTEM """' + "安全第一。" * 700_000 + '"""\n'
    answer = httpx.post(
        server.base_url + "/api/create", json={"name": "huge", "modelfile": text}, timeout=120
    )
    assert answer.status_code == 413 and "1 MB" in answer.text


def test_a_base_that_presets_use_cannot_be_deleted(ol: ollama.Client) -> None:
    _create(ol, "keeper")
    with pytest.raises(ollama.ResponseError) as refused:
        ol.delete(BASE)
    assert refused.value.status_code == 409 and "keeper:latest" in str(refused.value)
    assert ol.show(BASE).details is not None
    ol.delete("keeper")


def test_load_only_requests_with_a_preset_stay_load_only(ol: ollama.Client, server: ServerProcess) -> None:
    _create(ol, "loader", system=SYSTEM, messages=[{"role": "user", "content": "hi"}])
    for path in ("/api/chat", "/api/generate"):
        answer = httpx.post(server.base_url + path, timeout=60, json={"model": "loader", "stream": False})
        assert answer.status_code == 200 and answer.json()["done_reason"] == "load", answer.text
    ol.delete("loader")
