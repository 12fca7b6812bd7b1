"""The server-engine wiring without a real engine: engine choice, HF-format directories, the vLLM
command bendi builds, the completions body, and the engine's refusals as bendi's errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bendi.core.errors import ContextOverflowError, EngineError, UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import Settings
from bendi.engines.engine_select import Advice, choose_engine, hf_directory_model
from bendi.engines.hf_model import local_token_counter, read_hf_model
from bendi.engines.messages import ChatMessage, SamplingParams
from bendi.engines.pool import EnginePool
from bendi.engines.protocol import Engine
from bendi.engines.server_engine import vllm_launch
from bendi.engines.server_install import EngineInstall
from bendi.engines.upstream import refusal, request_body
from bendi.store.resolve import LocalModel

R1_TEMPLATE = (
    "{% for m in messages %}<｜{{ m['role'] }}｜>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}"
)


def _hf_dir(root: Path, *, template_in_config: bool = False) -> Path:
    model = root / "Tiny-R1-Distill"
    model.mkdir()
    config = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "hidden_size": 3584, "torch_dtype": "bfloat16",
    }  # fmt: skip
    (model / "config.json").write_text(json.dumps(config))
    tokenizer_config: dict[str, object] = {
        "bos_token": {"content": "<｜begin▁of▁sentence｜>"},
        "eos_token": "<｜end｜>",
    }
    if template_in_config:
        tokenizer_config["chat_template"] = [
            {"name": "tool_use", "template": "x"},
            {"name": "default", "template": R1_TEMPLATE},
        ]
    else:
        (model / "chat_template.jinja").write_text(R1_TEMPLATE)
    (model / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (model / "model.safetensors").write_bytes(b"\0" * 1000)
    return model


@pytest.mark.parametrize("template_in_config", [False, True])
def test_an_hf_directory_is_read_and_its_template_opens_reasoning(
    tmp_path: Path, template_in_config: bool
) -> None:
    hf = read_hf_model(_hf_dir(tmp_path, template_in_config=template_in_config))
    assert hf.architecture == "Qwen2ForCausalLM" and hf.weights_bytes == 1000
    assert hf.kv_bytes_per_token == 2 * 28 * 4 * 128 * 2
    assert hf.kv_cache_gib(8 * 4096) == 2  # 57,344 bytes a token x 32,768 tokens = 1.75 GiB, rounded up
    rendered = hf.template.render([ChatMessage("user", "hi")])
    assert rendered.text.endswith("<think>\n") and rendered.opens_reasoning


def test_engine_choice(tmp_path: Path) -> None:
    gguf = LocalModel("m", tmp_path / "m.gguf", 1, "file")
    hf = hf_directory_model(_hf_dir(tmp_path))
    assert hf.name == "Tiny-R1-Distill"
    assert choose_engine(gguf, "vllm") == "llama.cpp"  # GGUF files always run in process
    no_gpu = Advice(False, "vllm", "No GPU: llama.cpp runs a GGUF quant on the CPU.", {})
    assert choose_engine(hf, "auto", no_gpu) == "vllm"  # only the HF form is there, and vLLM is installed
    assert choose_engine(hf, "sglang") == "sglang"
    with pytest.raises(UserInputError, match="llama.cpp needs a GGUF"):
        choose_engine(hf, "llama.cpp")


def test_the_pool_starts_a_server_engine_for_an_hf_directory(tmp_path: Path) -> None:
    model_dir = _hf_dir(tmp_path)
    settings = Settings(home=tmp_path / "home", engine="vllm")
    started: list[tuple[str, str]] = []

    class FakeEngine:
        info = None

        async def close(self) -> None:
            started.append(("closed", ""))

    async def server_factory(model: LocalModel, kind: str, s: Settings, paths: DataPaths) -> Engine:
        started.append((model.name, kind))
        return FakeEngine()  # type: ignore[return-value]

    async def scenario() -> None:
        pool = EnginePool(settings, DataPaths(settings.home).ensure(), server_factory=server_factory)
        engine = await pool.acquire(str(model_dir))
        assert await pool.acquire("Tiny-R1-Distill") is engine  # the name clients use
        assert started == [("Tiny-R1-Distill", "vllm")]
        assert pool.loaded()[0].expires_in_s > 10 * 365 * 86400  # a server engine stays up
        await pool.aclose()
        assert started[-1] == ("closed", "")

    asyncio.run(scenario())


def test_the_vllm_command_is_private_eager_on_cpu_and_runs_no_model_code(tmp_path: Path) -> None:
    hf = read_hf_model(_hf_dir(tmp_path))
    settings = Settings(home=tmp_path / "home", context_tokens=4096, parallel_sequences=8)
    paths = DataPaths(settings.home).ensure()
    cpu = EngineInstall("vllm", "/venv/bin/python", "0.32.0+cpu", "CPU")
    plan = vllm_launch(cpu, hf, "r1:7b", settings, paths, 40000)
    argv, env = list(plan.argv), dict(plan.env)
    assert argv[:4] == ["/venv/bin/python", "-m", "vllm.entrypoints.cli.main", "serve"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "40000"
    assert argv[argv.index("--max-model-len") + 1] == "4096" and argv[argv.index("--max-num-seqs") + 1] == "8"
    assert "--trust-remote-code" not in argv and "--reasoning-parser" not in argv
    assert "--enforce-eager" in argv and argv[argv.index("--dtype") + 1] == "bfloat16"
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["VLLM_CACHE_ROOT"].startswith(str(paths.cache)) and env["TMPDIR"].startswith(str(paths.cache))
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    cuda = vllm_launch(
        EngineInstall("vllm", "/gpu/bin/python", "0.32.0", "CUDA"), hf, "r1:7b", settings, paths, 1
    )
    assert "--enforce-eager" not in cuda.argv and "VLLM_CPU_KVCACHE_SPACE" not in dict(cuda.env)


def test_the_completions_body_keeps_special_tokens_and_always_bounds_the_answer() -> None:
    body = request_body("m", "p", SamplingParams(max_tokens=None, top_k=0, seed=7), 2048, "vllm")
    assert body["max_tokens"] == 2048 and body["top_k"] == -1 and body["seed"] == 7
    assert body["skip_special_tokens"] is False and body["add_special_tokens"] is False
    assert body["stream_options"] == {"include_usage": True}
    plain = request_body("m", "p", SamplingParams(max_tokens=50_000), 2048, "openai")
    assert plain["max_tokens"] == 2048 and "top_k" not in plain and "skip_special_tokens" not in plain


def test_the_engines_refusals_become_bendis_errors() -> None:
    overflow = json.dumps({"error": {"message": "This model's maximum context length is 256 tokens. However, "
                                     "your prompt contains at least 257 input tokens, which exceeds this limit."}})  # fmt: skip
    error = refusal(400, overflow, 10)
    assert isinstance(error, ContextOverflowError)
    assert (error.prompt_tokens, error.context_tokens) == (257, 256)
    assert isinstance(refusal(400, '{"error": {"message": "bad top_p"}}', None), UserInputError)
    assert isinstance(refusal(500, "boom", None), EngineError)


def test_a_token_counter_is_used_only_when_the_tokenizers_package_is_there(tmp_path: Path) -> None:
    model = _hf_dir(tmp_path)
    assert local_token_counter(model) is None  # no tokenizer.json
    try:
        import tokenizers  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        (model / "tokenizer.json").write_text("{}")
        assert local_token_counter(model) is None  # the engine's /tokenize counts instead


def test_an_engine_that_is_not_installed_is_reported_so(tmp_path: Path) -> None:
    import sys

    from bendi.engines.server_install import probe_engine

    missing = probe_engine("sglang", sys.executable)
    assert not missing.installed and "not installed in" in missing.describe()
    broken = probe_engine("vllm", str(tmp_path / "no-python"))
    assert not broken.installed and "cannot run it" in broken.problem
