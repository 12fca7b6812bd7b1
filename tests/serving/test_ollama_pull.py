"""`ollama pull` / `ollama rm` semantics through a real `bendi serve`, downloading from a local fake hub."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))  # the store area's fake hub

from fakehub import FakeHub  # noqa: E402
from ggufmaker import write_gguf  # noqa: E402

REPO, FILE = "acme/Tiny-GGUF", "Tiny-Q4_0.gguf"
REF = f"hf:{REPO}/{FILE}"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    with FakeHub() as running:
        running.state.add(REPO, FILE, write_gguf(tmp_path_factory.mktemp("up") / FILE, 2_000_000, seed=3))
        yield running


@pytest.fixture(scope="module")
def client(bendi_server_factory, hub: FakeHub) -> ollama.Client:  # type: ignore[no-untyped-def]
    return ollama.Client(host=bendi_server_factory(env=hub.settings_env()).base_url)


def test_pull_streams_ollama_progress_then_the_model_is_listed_and_deletable(client: ollama.Client) -> None:
    before = {m.model for m in client.list().models}
    lines = list(client.pull(REF, stream=True))
    statuses = [line.status for line in lines]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert "verifying sha256 digest" in statuses and "writing manifest" in statuses
    downloading = [line for line in lines if (line.status or "").startswith("pulling ") and line.total]
    assert downloading and downloading[-1].completed == downloading[-1].total == 2_000_224
    added = {m.model for m in client.list().models} - before
    assert len(added) == 1
    name = added.pop()
    assert client.pull(REF, stream=False).status == "success"  # already there: verified again, still fine
    client.delete(name)
    assert name not in {m.model for m in client.list().models}
    with pytest.raises(ollama.ResponseError) as info:
        client.delete(name)
    assert info.value.status_code == 404


def test_pull_of_an_unknown_model_is_an_ollama_error(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.pull("hf:acme/Missing-GGUF/none.gguf", stream=False)
    assert info.value.status_code in (400, 404)
    assert info.value.error
