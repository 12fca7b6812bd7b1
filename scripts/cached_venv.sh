# Sourced by scripts/install_vllm.sh and install_tune.sh: a venv in the cache that is rebuilt only when
# what it holds (KEY) changes. Set TARGET, KEY, PY and WHAT (for the message) first. When the cached
# venv is current this prints its python and exits the calling script; otherwise it makes a fresh venv
# and leaves VPY (its python), MARKER (write KEY there when done) and pip_quietly for the caller.
MARKER=$TARGET/.bendi-installed
# One install of TARGET at a time: a second waits, then finds the venv current. The lock is held
# until the calling script exits (it writes MARKER last), and a pip it started holds it too, even
# when the script was killed, so nothing deletes a venv that a pip is still writing.
mkdir -p "$(dirname "$TARGET")"
exec 8>"$TARGET.lock"
flock 8
if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$KEY" ] && "$TARGET/bin/python" -c '' 2>/dev/null; then
  echo "$TARGET/bin/python"
  exit 0
fi
echo "Installing $WHAT into $TARGET (once; later runs take a second)." >&2
rm -rf "$TARGET"
"$PY" -m venv "$TARGET"
VPY=$TARGET/bin/python
pip_quietly() { # pip's warnings about index folders this machine does not have are noise here
  "$VPY" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
}
pip_quietly install -q --upgrade pip
