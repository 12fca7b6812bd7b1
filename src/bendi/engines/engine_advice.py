"""The advisor's view of this machine for engine_select: hardware class, fit, and which server engines are installed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from bendi.catalog.engine_choice import gpu_class, plan_serving
from bendi.core.errors import BendiError
from bendi.core.settings import Settings
from bendi.engines.engine_select import Advice, ServerKind, is_hf_model
from bendi.engines.server_install import EngineInstall, engine_python, install_hint, probe_engine
from bendi.hardware.profile import HardwareProfile
from bendi.store.resolve import LocalModel

PROBE_TTL_S = 300.0  # hardware and installs change rarely; a model load must not wait on probes each time
GPU_MEMORY_UTILIZATION = 0.9  # vLLM's and SGLang's default share of each GPU
KV_HEADROOM = 1.2  # weights plus room for a useful KV cache
_MLA_ARCHITECTURES = ("DeepseekV2", "DeepseekV3")  # SGLang is DeepSeek's recommended engine for these

T = TypeVar("T")
_cache: dict[str, tuple[float, object]] = {}
_lock = threading.Lock()


def _cached(key: str, make: Callable[[], T]) -> T:
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < PROBE_TTL_S:
        return hit[1]  # type: ignore[return-value]
    value = make()
    with _lock:
        _cache[key] = (now, value)
    return value


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _architecture(model: LocalModel) -> str:
    try:
        config = json.loads((model.path / "config.json").read_text(encoding="utf-8"))
        return str((config.get("architectures") or [""])[0])
    except (OSError, ValueError, AttributeError, IndexError):
        return ""


def _catalog_plan(model: LocalModel, hw: HardwareProfile) -> tuple[bool, ServerKind, str] | None:
    """plan_serving for the catalog model `model` is a variant of (its default GGUF variant, so the
    advisor weighs GGUF against the publisher's weights), or None when the catalog does not know it."""
    from bendi.catalog.catalog import load_catalog

    family, _, rest = model.name.partition(":")
    catalog = load_catalog()
    for candidate in (model.name, f"{family}:{rest.split('-')[0]}"):
        try:
            variant = catalog.resolve(candidate)
        except (BendiError, LookupError, ValueError):
            continue
        if variant.format != "gguf":
            variant = catalog.resolve(f"{variant.family}:{variant.tag}")
        if variant.format != "gguf":
            return None
        plan = plan_serving(variant, hw)
        server: ServerKind = "sglang" if plan.engine == "sglang" else "vllm"
        return plan.engine in ("vllm", "sglang"), server, " ".join(plan.engine_reasons)
    return None


def advice_for(hf: LocalModel, hw: HardwareProfile, not_installed: dict[str, str]) -> Advice:
    """Pure: what the advisor prefers for the HF-format weights `hf` on machine `hw`."""
    cls, why = gpu_class(hw)
    arch = _architecture(hf)
    server: ServerKind = "sglang" if any(a in arch for a in _MLA_ARCHITECTURES) else "vllm"
    if cls != "datacenter":
        return Advice(False, server, why, not_installed)
    planned = _catalog_plan(hf, hw)
    if planned is not None:
        prefer, server, reason = planned
        return Advice(prefer, server, reason or why, not_installed)
    usable = int(sum(g.memory_free_bytes for g in hw.gpus) * GPU_MEMORY_UTILIZATION)
    need = int(hf.size_bytes * KV_HEADROOM)
    if need <= usable:
        return Advice(True, server, f"{why} {hf.name} needs about {need / 1e9:.1f} GB with its KV cache and "
                      f"the GPUs have {usable / 1e9:.1f} GB for it.", not_installed)  # fmt: skip
    return Advice(False, server, f"{why} But {hf.name} needs about {need / 1e9:.1f} GB and the GPUs have "
                  f"{usable / 1e9:.1f} GB for it.", not_installed)  # fmt: skip


def _probe(kind: str, python: str) -> EngineInstall:
    return _cached(f"install:{kind}:{python}", lambda: probe_engine(kind, python))


def _not_installed(settings: Settings) -> dict[str, str]:
    missing = {}
    for kind in ("vllm", "sglang"):
        install = _probe(kind, engine_python(kind, settings))
        if not install.installed:
            missing[kind] = f"{install.describe()} ({install_hint(kind)})"
    return missing


def local_hardware() -> HardwareProfile:
    from bendi.hardware.probe import probe

    return _cached("hardware", probe)


def advise(found: Sequence[LocalModel], settings: Settings) -> Advice:
    """Probe this machine (cached) and ask the advisor about the first HF-format model in `found`."""
    hf = next(m for m in found if is_hf_model(m))
    pythons = f"{engine_python('vllm', settings)}|{engine_python('sglang', settings)}"
    # Cached too: the pool asks on every request, and the answer changes only with the probes.
    return _cached(
        f"advice:{hf.name}:{hf.path}:{pythons}",
        lambda: advice_for(hf, local_hardware(), _not_installed(settings)),
    )
