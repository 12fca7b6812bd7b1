#!/usr/bin/env bash
# Install Ray in a venv of its own, cached, and print the path of its `ray` command.
# Ray pulls grpcio, aiohttp and friends that bendi does not need, so it never goes into bendi's venv:
# `bendi cluster up` runs the command named by the ray_command setting (env BENDI_RAY_COMMAND), and
# the cluster tests use this one (tests/advisor/test_cluster_ray.py).
# The first install takes about 10 s (+0.2 GiB); later runs see the marker and take well under a second.
# Usage: bash scripts/install_ray.sh [TARGET_DIR]   (default ~/.cache/bendi/envs/ray-2.60.0)
# PYTHON picks the interpreter the venv is made from (default python3).
set -euo pipefail
VERSION=2.60.0
TARGET=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/bendi/envs/ray-$VERSION}
PY=${PYTHON:-python3}
KEY="ray[default]==$VERSION" # what the venv holds; a change here rebuilds it
MARKER=$TARGET/.bendi-installed

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$KEY" ] && "$TARGET/bin/ray" --version >/dev/null 2>&1; then
  echo "$TARGET/bin/ray"
  exit 0
fi
echo "Installing $KEY into $TARGET (about 10 s, once)." >&2
rm -rf "$TARGET"
mkdir -p "$(dirname "$TARGET")"
"$PY" -m venv "$TARGET"
"$TARGET/bin/python" -m pip install -q --upgrade pip >&2
"$TARGET/bin/python" -m pip install -q "$KEY" >&2
"$TARGET/bin/ray" --version >&2
echo "$KEY" >"$MARKER"
echo "$TARGET/bin/ray"
