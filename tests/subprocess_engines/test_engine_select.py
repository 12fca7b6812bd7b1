"""`--engine auto` follows the advisor: which installed form of a model (GGUF or HF) and which engine, and why;
per-model engines and engine arguments from the config file."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bendi.core.errors import EngineError, UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings, load_settings
from bendi.engines import engine_advice, engine_select
from bendi.engines.engine_advice import advice_for
from bendi.engines.engine_select import Advice, decide, hf_directory_model, select_engine
from bendi.engines.hf_model import read_hf_model
from bendi.engines.pool import EnginePool
from bendi.engines.protocol import Engine
from bendi.engines.server_engine import vllm_launch
from bendi.engines.server_install import EngineInstall
from bendi.hardware.profile import HardwareProfile
from bendi.store.resolve import LocalModel, resolve_model
from bendi.store.store import Store

MACHINES = Path(__file__).resolve().parents[1] / "advisor" / "fixtures" / "machines"


def machine(name: str) -> HardwareProfile:
    return HardwareProfile.from_json((MACHINES / f"{name}.json").read_text())


def _hf_dir(root: Path, name: str = "r1-7b-bf16", arch: str = "Qwen2ForCausalLM", size: int = 1000) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    config = {"architectures": [arch], "model_type": "qwen2", "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1, "hidden_size": 64, "torch_dtype": "bfloat16"}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(_safetensors(size))
    return folder


def _safetensors(data_bytes: int) -> bytes:
    """A valid safetensors file: one BF16 tensor of `data_bytes` bytes of zeros."""
    values = data_bytes // 2
    header = json.dumps({"w": {"dtype": "BF16", "shape": [values], "data_offsets": [0, values * 2]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + b"\0" * (values * 2)


def _gguf(tmp_path: Path) -> LocalModel:
    path = tmp_path / "r1.gguf"
    path.write_bytes(b"GGUF")
    return LocalModel("deepseek-r1:7b-q4_K_M", path, 4, "store")


def _hf(tmp_path: Path) -> LocalModel:
    model = hf_directory_model(_hf_dir(tmp_path))
    return LocalModel("deepseek-r1:7b-bf16", model.path, 7_600_000_000, "store")


GPU_WHY = "8x H20 are data-center GPUs: a server engine (vLLM or SGLang) with the publisher's weights."


def test_auto_picks_the_form_the_advisor_prefers_and_says_why(tmp_path: Path) -> None:
    gguf, hf = _gguf(tmp_path), _hf(tmp_path)
    server = decide([gguf, hf], "auto", Advice(True, "vllm", GPU_WHY, {}))
    assert (server.model, server.kind) == (hf, "vllm")
    assert (
        server.reason.startswith("8x H20 are data-center GPUs")
        and "deepseek-r1:7b-bf16 on vllm" in server.reason
    )
    laptop = decide(
        [hf, gguf], "auto", Advice(False, "vllm", "No GPU: llama.cpp runs a GGUF quant on the CPU.", {})
    )
    assert (laptop.model, laptop.kind) == (gguf, "llama.cpp")
    assert "No GPU" in laptop.reason and "GGUF deepseek-r1:7b-q4_K_M on llama.cpp" in laptop.reason


def test_auto_never_picks_a_server_engine_that_is_not_installed(tmp_path: Path) -> None:
    gguf, hf = _gguf(tmp_path), _hf(tmp_path)
    missing = {"vllm": "not installed in /usr/bin/python3", "sglang": "not installed in /usr/bin/python3"}
    fallback = decide([gguf, hf], "auto", Advice(True, "vllm", GPU_WHY, missing))
    assert (fallback.model, fallback.kind) == (gguf, "llama.cpp")
    assert "But vllm is not installed in /usr/bin/python3, and sglang is not installed" in fallback.reason
    other = decide([gguf, hf], "auto", Advice(True, "sglang", GPU_WHY, {"sglang": "not installed in /x"}))
    assert (other.model, other.kind) == (hf, "vllm")
    assert "sglang is not installed in /x, so vllm, which is installed" in other.reason
    with pytest.raises(EngineError, match="only installed in Hugging Face format.*scripts/install_vllm.sh"):
        decide([hf], "auto", Advice(True, "vllm", GPU_WHY, missing))
    cpu_only_hf = decide([hf], "auto", Advice(False, "vllm", "No GPU: llama.cpp runs a GGUF quant.", {}))
    assert cpu_only_hf.kind == "vllm" and cpu_only_hf.reason.startswith(
        "Only the HF-format weights are installed"
    )


def test_an_asked_engine_picks_the_matching_form(tmp_path: Path) -> None:
    gguf, hf = _gguf(tmp_path), _hf(tmp_path)
    assert decide([gguf, hf], "llama.cpp", None).model == gguf
    assert (decide([gguf, hf], "sglang", None).model, decide([gguf, hf], "sglang", None).kind) == (
        hf,
        "sglang",
    )
    only_gguf = decide([gguf], "vllm", None)
    assert only_gguf.kind == "llama.cpp" and "only llama.cpp runs" in only_gguf.reason
    with pytest.raises(UserInputError, match="llama.cpp needs a GGUF"):
        decide([hf], "llama.cpp", None)


@pytest.mark.parametrize(
    ("machine_name", "prefer", "words"),
    [
        ("server-8xh20", True, "data-center GPU"),
        ("dgx-a100-8x", True, "data-center GPU"),
        ("workstation-2x4090-128gb", False, "consumer GPU"),
        ("laptop-16gb", False, "No GPU"),
        ("mac-m2-ultra-192gb", False, "Apple GPU"),
    ],
)
def test_the_advice_comes_from_the_advisor(
    tmp_path: Path, machine_name: str, prefer: bool, words: str
) -> None:
    advice = advice_for(_hf(tmp_path), machine(machine_name), {})
    assert advice.prefer_server is prefer and words in advice.reason and advice.server == "vllm"
    if prefer:  # the catalog's plan for deepseek-r1:7b on these GPUs: BF16 with tensor parallel
        assert "BF16" in advice.reason and "fits" in advice.reason


def test_advice_for_a_model_the_catalog_does_not_know_checks_gpu_memory(tmp_path: Path) -> None:
    small = hf_directory_model(_hf_dir(tmp_path, "tiny"))
    assert advice_for(small, machine("server-8xh20"), {}).prefer_server
    huge = LocalModel(
        "my-v3", _hf_dir(tmp_path, "v3", arch="DeepseekV3ForCausalLM").resolve(), 2 * 10**12, "file"
    )
    advice = advice_for(huge, machine("server-8xh20"), {})
    assert not advice.prefer_server and advice.server == "sglang" and "needs about 2400.0 GB" in advice.reason


def _python_with_package(root: Path, package: str) -> str:
    """A real interpreter (a venv) in which `package` is importable, for the install probe."""
    venv = root / f"venv-{package}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    (Path(site) / package).mkdir()
    (Path(site) / package / "__init__.py").write_text("")
    return str(venv / "bin" / "python")


@pytest.fixture()
def two_forms(tmp_path: Path, smollm2_path: Path) -> tuple[Settings, DataPaths]:
    settings = Settings(
        home=tmp_path / "home", vllm_python="/nonexistent/python", sglang_python="/nonexistent/python"
    )
    paths = DataPaths(settings.home).ensure()
    store = Store(settings, paths)
    store.import_file(smollm2_path, name="deepseek-r1:7b-q4_K_M", link=True)
    store.import_dir(_hf_dir(tmp_path), name="deepseek-r1:7b-bf16")
    engine_advice.clear_cache()
    engine_select._last_logged.clear()
    return settings, paths


def _pool_choice(settings: Settings, paths: DataPaths, asked: str) -> tuple[str, str]:
    started: list[tuple[str, str]] = []

    class Loaded:
        info = None

        async def close(self) -> None:
            pass

    async def server_factory(model: LocalModel, kind: str, s: Settings, p: DataPaths) -> Engine:
        started.append((model.name, kind))
        return Loaded()  # type: ignore[return-value]

    def engine_factory(model: LocalModel, s: Settings) -> Engine:
        started.append((model.name, "llama.cpp"))
        return Loaded()  # type: ignore[return-value]

    async def scenario() -> None:
        pool = EnginePool(settings, paths, engine_factory=engine_factory, server_factory=server_factory,
                          fit_check=lambda *a: None)  # fmt: skip
        await pool.acquire(asked)
        await pool.aclose()

    asyncio.run(scenario())
    return started[0]


def test_the_pool_serves_the_advised_form_of_a_name(
    two_forms: tuple[Settings, DataPaths],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, paths = two_forms
    # This machine has no GPU: the GGUF on llama.cpp.
    monkeypatch.setattr(engine_advice, "local_hardware", lambda: machine("laptop-16gb"))
    with caplog.at_level("INFO", logger="bendi.engines"):
        assert _pool_choice(settings, paths, "deepseek-r1:7b") == ("deepseek-r1:7b-q4_K_M", "llama.cpp")
    chosen = [r for r in caplog.records if r.getMessage() == "engine chosen"]
    assert chosen and "No GPU" in chosen[-1].reason  # type: ignore[attr-defined]
    # A data-center machine without vLLM or SGLang installed: still the GGUF, and the reason says so.
    monkeypatch.setattr(engine_advice, "local_hardware", lambda: machine("server-8xh20"))
    engine_advice.clear_cache()  # the advice is cached (5 min) like the probes it rests on
    decision = select_engine("deepseek-r1:7b", None, lambda n: resolve_model(paths, n), settings, paths)
    assert decision.kind == "llama.cpp" and "vllm is not installed in /nonexistent/python" in decision.reason
    # ... and with vLLM installed: the HF-format weights on vLLM.
    with_vllm = settings.model_copy(update={"vllm_python": _python_with_package(tmp_path, "vllm")})
    engine_advice.clear_cache()
    assert _pool_choice(with_vllm, paths, "deepseek-r1:7b") == ("deepseek-r1:7b-bf16", "vllm")
    # A full name is taken as asked.
    assert _pool_choice(with_vllm, paths, "deepseek-r1:7b-q4_K_M") == ("deepseek-r1:7b-q4_K_M", "llama.cpp")


def test_a_per_model_engine_in_the_config_file(two_forms: tuple[Settings, DataPaths], tmp_path: Path) -> None:
    settings, paths = two_forms
    config = tmp_path / "config.toml"
    config.write_text(
        f'home = "{settings.home}"\nvllm_python = "/nonexistent/python"\n'
        '[models."deepseek-r1:7b"]\nengine = "sglang"\n'
        '[models."deepseek-r1:7b-bf16"]\nvllm_args = ["--max-num-batched-tokens", "256", "--host", "127.0.0.1"]\n'
    )
    loaded = load_settings(config)
    assert _pool_choice(loaded, paths, "deepseek-r1:7b") == ("deepseek-r1:7b-bf16", "sglang")
    # An engine asked for by the caller (bendi serve --engine, the API) wins over the config file.
    decision = select_engine("deepseek-r1:7b", "llama.cpp", lambda n: resolve_model(paths, n), loaded, paths)
    assert decision.model.name == "deepseek-r1:7b-q4_K_M"
    # The engine arguments reach the command line, after bendi's own (so they win).
    hf = read_hf_model(resolve_model(paths, "deepseek-r1:7b-bf16").path)
    install = EngineInstall("vllm", "/venv/bin/python", "0.32.0+cpu", "CPU")
    argv = list(vllm_launch(install, hf, "deepseek-r1:7b-bf16", loaded, paths, 40000).argv)
    assert argv[-4:] == ["--max-num-batched-tokens", "256", "--host", "127.0.0.1"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ('["--host", "0.0.0.0"]', "refuses '--host 0.0.0.0': the engine listens on loopback only"),
        ('["--host=192.168.1.5"]', "refuses '--host 192.168.1.5'"),
        ('["--api-key", "s3cret"]', "bendi's gateway does the authentication"),
        ('["--trust-remote-code"]', "never runs Python code shipped inside a model directory"),
        ('["--trust_remote_code"]', "never runs Python code"),
        ('["--port", "8000"]', "picks the engine's private port itself"),
        ('["--served-model-name", "x"]', "bendi names the model itself"),
        ('["--uds", "/tmp/s"]', "socket file"),
    ],
)
def test_engine_args_that_would_expose_the_engine_are_refused(tmp_path: Path, args: str, words: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'home = "{tmp_path}"\n[models."m"]\nengine_args = {args}\n')
    with pytest.raises(UserInputError) as refused:
        load_settings(config)
    assert words in refused.value.message and "models.m.engine_args" in refused.value.message


def test_unknown_keys_in_a_model_table_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'home = "{tmp_path}"\n[models."m"]\nengin = "vllm"\n')
    with pytest.raises(UserInputError, match="models.m.engin"):
        load_settings(config)


def test_per_model_settings_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENDI_HOME", str(tmp_path))
    monkeypatch.setenv("BENDI_MODELS", '{"m": {"engine": "vllm", "vllm_args": ["--max-num-seqs", "4"]}}')
    entry = load_settings().models["m"]
    assert (entry.engine, entry.engine_args) == ("vllm", ("--max-num-seqs", "4"))
    monkeypatch.setenv("BENDI_MODELS", "engine=vllm")
    with pytest.raises(UserInputError, match="BENDI_MODELS must be a JSON object"):
        load_settings()
