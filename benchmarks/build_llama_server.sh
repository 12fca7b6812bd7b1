#!/usr/bin/env bash
# Build llama.cpp's own C++ `llama-server` (the reference for benchmarks/bench_serving.py,
# bench_kquant.py, bench_long_prompt.py) and `llama-quantize` (makes the Q8_0 / Q4_K_M / Q6_K test
# models, tests/kquant/) from the llama.cpp sources vendored in the installed llama-cpp-python's
# sdist. Built OUTSIDE the repo; nothing here is committed but this script.
# Usage: bash benchmarks/build_llama_server.sh [DIR]      (prints the path of llama-server)
# With WITH_BENDI_PATCHES=1 it applies patches/llama-cpp-python/ first: the same kernels as bendi's
# build, to see what the scheduler alone is worth. LLAMA_CPP_PYTHON_VERSION overrides the version
# read from the installed llama_cpp.
set -euo pipefail
DIR=${1:-/tmp/llama-server-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
VERSION=${LLAMA_CPP_PYTHON_VERSION:-$("$PY" -c "import llama_cpp; print(llama_cpp.__version__.split('+')[0])")}  # bendi's builds add +bendi.KEY
mkdir -p "$DIR"
cd "$DIR"
# Several benchmarks (and people) may ask for the build at once: one builds, the others wait for it.
exec 9>"$DIR/.build.lock"
flock 9
TARGETS=()
[ -f llama-server ] || TARGETS+=(llama-server)
[ -f llama-quantize ] || TARGETS+=(llama-quantize)
if [ ${#TARGETS[@]} -gt 0 ]; then
  SRC="$DIR/llama_cpp_python-$VERSION/vendor/llama.cpp"
  if [ ! -d "$SRC" ]; then
    "$PY" -m pip download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d sdist >/dev/null
    tar xzf sdist/llama_cpp_python-"$VERSION".tar.gz
    if [ "${WITH_BENDI_PATCHES:-0}" = 1 ]; then
      for patch_file in "$ROOT"/patches/llama-cpp-python/*.patch; do
        patch -s -p1 --fuzz=0 -d "llama_cpp_python-$VERSION" <"$patch_file"
      done
    fi
  fi
  # Same portable CPU flags as bendi's own llama.cpp build, so the comparison is like for like.
  cmake -S "$SRC" -B build -DGGML_NATIVE=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
  for target in "${TARGETS[@]}"; do
    nice cmake --build build --target "$target" -j2 >/dev/null
    cp "build/bin/$target" .
  done
fi
echo "$DIR/llama-server"
