#!/usr/bin/env bash
# Install llama-cpp-python built from source with bendi's patches to its vendored llama.cpp
# (patches/llama-cpp-python/*.patch: faster CPU kernels, bit-identical results).
# The wheel is kept in ~/.cache/bendi/wheels under a key of the version, the patches and CMAKE_ARGS,
# so a second install takes seconds; the first builds llama.cpp (4-7 minutes on 2 cores).
# Usage: bash scripts/install_llama_cpp.sh [PYTHON]      (default: .venv/bin/python)
# CMAKE_ARGS passes through to llama.cpp's build (default -DGGML_NATIVE=OFF: portable x86-64 with
# AVX2; -march=native builds crash on some virtual machines). For NVIDIA GPUs: -DGGML_CUDA=on.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${1:-$ROOT/.venv/bin/python}
VERSION=0.3.36 # the patches are written against this release's vendored llama.cpp
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
PATCHES=("$ROOT"/patches/llama-cpp-python/*.patch)
KEY=$({ echo "$VERSION $CMAKE_ARGS"; cat "${PATCHES[@]}"; } | sha256sum | cut -c1-12)
LOCAL_VERSION="$VERSION+bendi.$KEY"
CACHE=${BENDI_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bendi/wheels}/$KEY

installed=$("$PY" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || true)
if [ "$installed" = "$LOCAL_VERSION" ]; then
  exit 0
fi
if ! compgen -G "$CACHE/*.whl" >/dev/null; then
  echo "Building llama.cpp with bendi's patches ($LOCAL_VERSION, CMAKE_ARGS=$CMAKE_ARGS); this takes a few minutes once." >&2
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK"
  tar xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK"
  SRC=$WORK/llama_cpp_python-$VERSION
  for patch_file in "${PATCHES[@]}"; do
    if command -v patch >/dev/null; then
      applied=$(patch -s -p1 --fuzz=0 --forward -d "$SRC" <"$patch_file" 2>&1) || applied="failed: $applied"
    else
      applied=$(cd "$SRC" && git apply -p1 "$patch_file" 2>&1) || applied="failed: $applied"
    fi
    if [[ $applied == failed:* ]]; then
      echo "error: $patch_file does not apply to llama-cpp-python $VERSION ($applied)." >&2
      echo "The patches and VERSION in $0 go together; update both, or install stock llama-cpp-python." >&2
      exit 1
    fi
  done
  # A local version label keeps this build apart from PyPI's in pip's caches and in `pip list`.
  sed -i "s/^__version__ = .*/__version__ = \"$LOCAL_VERSION\"/" "$SRC/llama_cpp/__init__.py"
  rm -rf "$CACHE.part"
  "$PY" -m pip wheel -q --no-deps "$SRC" -w "$CACHE.part"
  rm -rf "$CACHE"
  mv "$CACHE.part" "$CACHE"
fi
"$PY" -m pip install -q "$CACHE"/*.whl
