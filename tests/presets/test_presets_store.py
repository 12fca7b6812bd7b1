"""Presets in the store: save/find/list/remove, names, flattening, FROM a GGUF file, and resolution
(a preset without adapters resolves to its base, so the engine pool shares the base's engine)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bendi.core.errors import (
    AlreadyExistsError,
    InvalidModelFileError,
    InvalidNameError,
    ModelfileError,
    ModelNotFoundError,
    PresetBaseInUseError,
    UserInputError,
)
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.store.local_model import AdapterRef
from bendi.store.modelfile import parse_modelfile
from bendi.store.presets import (
    Preset,
    check_unused_base,
    find_preset,
    list_presets,
    remove_preset,
    save_preset,
)
from bendi.store.presets_create import create_preset
from bendi.store.resolve import resolve_model
from bendi.store.store import Store

BASE = "smollm2:135m"


@pytest.fixture()
def paths(settings: Settings) -> DataPaths:
    return DataPaths(settings.home).ensure()


def test_save_find_list_remove(paths: DataPaths) -> None:
    save_preset(paths, Preset("safety", "smollm2", system="Be safe.", parameters={"temperature": 0.2}))
    found = find_preset(paths, "safety")
    assert found is not None and found == find_preset(paths, "safety:latest")
    assert (found.name, found.base, found.system) == ("safety:latest", BASE, "Be safe.")  # canonical names
    assert found.created_s > 0
    stored = json.loads((paths.models / "presets" / "safety" / "latest.json").read_text())
    assert stored["parameters"] == {"temperature": 0.2} and stored["version"] == 1
    save_preset(paths, Preset("smollm2:135m+mining", BASE))  # the name `bendi tune` gives
    assert [p.name for p in list_presets(paths)] == ["safety:latest", "smollm2:135m+mining"]
    remove_preset(paths, "safety")
    assert find_preset(paths, "safety") is None
    with pytest.raises(ModelNotFoundError, match="no preset named"):
        remove_preset(paths, "safety")


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "", "a:b:c", "名字", "a\x00b", "x" * 121, ".hidden",
                                  "ok:../../etc"])  # fmt: skip
def test_hostile_names_are_refused_and_never_touch_the_disk(paths: DataPaths, name: str) -> None:
    with pytest.raises(InvalidNameError):
        save_preset(paths, Preset(name, BASE))
    assert find_preset(paths, name) is None
    assert not (paths.models / "presets").exists() or not any((paths.models / "presets").rglob("*.json"))


def test_conflicts_missing_bases_and_damaged_files(paths: DataPaths) -> None:
    with pytest.raises(AlreadyExistsError, match="installed model"):
        save_preset(paths, Preset("smollm2:135m", BASE))  # the bundled model's own name
    with pytest.raises(ModelNotFoundError, match="FROM 'deepseek-r1:671b'"):
        save_preset(paths, Preset("big", "deepseek-r1:671b"))
    with pytest.raises(ModelfileError, match="ADAPTER .*no such file"):
        save_preset(paths, Preset("tuned", BASE, adapters=[AdapterRef(Path("/nonexistent/lora.gguf"))]))
    assert list_presets(paths) == []
    save_preset(paths, Preset("good", BASE))
    broken = paths.models / "presets" / "broken" / "latest.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    assert [p.name for p in list_presets(paths)] == ["good:latest"]  # a damaged file is skipped in lists
    with pytest.raises(InvalidModelFileError, match="damaged"):
        find_preset(paths, "broken")


def test_a_preset_from_a_preset_is_flattened(paths: DataPaths) -> None:
    save_preset(paths, Preset("parent", BASE, system="Parent.", parameters={"temperature": 0.1, "stop": ["A"]},
                              messages=[{"role": "user", "content": "hi"}], knowledge_base="mining"))  # fmt: skip
    save_preset(paths, Preset("child", "parent", parameters={"stop": ["B"], "top_k": 5}))
    child = find_preset(paths, "child")
    assert child is not None and child.base == BASE
    assert child.system == "Parent." and child.knowledge_base == "mining" and child.messages == [
        {"role": "user", "content": "hi"}]  # fmt: skip
    assert child.parameters == {"temperature": 0.1, "stop": ["B"], "top_k": 5}  # the child's values win


def test_removing_a_base_that_presets_use_is_refused(paths: DataPaths) -> None:
    save_preset(paths, Preset("one", BASE))
    with pytest.raises(PresetBaseInUseError, match="one:latest"):
        check_unused_base(paths, "smollm2")
    check_unused_base(paths, "other-model")  # not used: fine


def test_resolution_shares_the_base_and_adapters_get_their_own_model(
    paths: DataPaths, tmp_path: Path
) -> None:
    save_preset(paths, Preset("plain", BASE))
    base = resolve_model(paths, BASE)
    assert resolve_model(paths, "plain") == base  # the same LocalModel: the pool loads it once
    adapter = tmp_path / "lora.gguf"
    adapter.write_bytes(b"GGUF")
    save_preset(paths, Preset("tuned", BASE, adapters=[AdapterRef(adapter, 0.5)]))
    tuned = resolve_model(paths, "tuned")
    assert tuned.name == "tuned:latest" and tuned.path == base.path
    assert tuned.adapters == (AdapterRef(adapter, 0.5),)


def test_from_a_gguf_file_imports_it(settings: Settings, paths: DataPaths, tmp_path: Path,
                                     smollm2_path: Path) -> None:  # fmt: skip
    folder = tmp_path / "project"
    (folder / "weights").mkdir(parents=True)
    shutil.copy(smollm2_path, folder / "weights" / "Smol.gguf")
    text = "FROM ./weights/Smol.gguf\nSYSTEM You are terse.\n"
    created = create_preset(settings, paths, parse_modelfile(text, folder, name="terse"))
    assert created.base == "smol:latest" and created.modelfile == text
    assert Store(settings, paths).get("smol") is not None  # imported into the store, hashed
    assert resolve_model(paths, "terse").name == "smol:latest"
    # Ollama's habit: `create x` FROM ./x.gguf; the weights get their own name beside the preset.
    shutil.copy(smollm2_path, folder / "same.gguf")
    same = create_preset(settings, paths, parse_modelfile("FROM same.gguf\n", folder, name="same"))
    assert same.base == "same-weights:latest"
    with pytest.raises(UserInputError, match="no such file"):
        create_preset(settings, paths, parse_modelfile("FROM ./missing.gguf\n", folder, name="m"))
    with pytest.raises(UserInputError, match="Over the API"):
        create_preset(settings, paths, parse_modelfile(text, folder, name="api"), allow_paths=False)
    assert find_preset(paths, "m") is None and find_preset(paths, "api") is None
