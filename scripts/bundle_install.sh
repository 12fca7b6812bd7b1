#!/usr/bin/env bash
# bendi's offline installer: shipped as install.sh in every bundle that `bendi bundle create` writes.
# Needs only bash, python3 (its venv module), tar and sha256sum; never the network, never a compiler.
# Order matters: every file is checked against SHA256SUMS and the target against bundle.json before
# anything is written, so a damaged or incomplete bundle installs nothing.
# Usage: bash install.sh [--prefix DIR] [--no-start] [--service] [--python PYTHON]
set -euo pipefail
BUNDLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
PREFIX=/opt/bendi
START=1
SERVICE=0
PY=python3

usage() {
  cat <<'EOF'
Usage: bash install.sh [--prefix DIR] [--no-start] [--service] [--python PYTHON]
  --prefix DIR     where bendi goes (a Python virtual environment; the command is DIR/bin/bendi). Default /opt/bendi.
  --no-start       install only; do not start bendi.
  --service        install and start the system service (`bendi service install`) instead of starting bendi now.
  --python PYTHON  the Python to build the environment with (default python3; it must match the bundle's version).
Data (models, knowledge bases) goes to BENDI_HOME as usual (default ~/.bendi).
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=${2:?--prefix needs a folder}; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --no-start) START=0; shift ;;
    --service) SERVICE=1; shift ;;
    --python) PY=${2:?--python needs an interpreter}; shift 2 ;;
    --python=*) PY=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

refuse() {
  printf 'install.sh: %b\n' "$*" >&2
  echo "Nothing was installed." >&2
  exit 1
}

# ---- 1. the bundle: plain files only, each listed, each intact ------------------------------------------
cd "$BUNDLE"
[ -f SHA256SUMS ] || refuse "SHA256SUMS is missing from $BUNDLE, so the bundle cannot be checked."
odd=$(find . -mindepth 1 ! -type f ! -type d -printf '%P\n')
[ -z "$odd" ] || refuse "the bundle holds links or special files, which a bundle never has:\n$odd"
# An unlisted file is refused too: pip would consider any extra wheel lying in wheels/.
listed=$(sed -e 's/^[0-9a-f]\{64\}  //' SHA256SUMS | LC_ALL=C sort)
present=$(find . -type f ! -path ./SHA256SUMS -printf '%P\n' | LC_ALL=C sort)
unlisted=$(LC_ALL=C comm -13 <(printf '%s\n' "$listed") <(printf '%s\n' "$present") | sed '/^$/d')
[ -z "$unlisted" ] || refuse "these files are not listed in SHA256SUMS:\n$unlisted"
echo "Checking $(printf '%s\n' "$listed" | wc -l) files against SHA256SUMS..."
if ! failed=$(sha256sum --check --quiet --strict SHA256SUMS 2>&1); then
  refuse "these files are missing or damaged:\n$failed"
fi

# ---- 2. the target: the Python, platform and glibc the wheels were chosen for -----------------------------
command -v "$PY" >/dev/null || refuse "$PY was not found; install Python 3 or pass --python."
"$PY" - "$BUNDLE/bundle.json" <<'EOF' || refuse "this machine does not suit the bundle (see above)."
import json, platform, sys
m = json.load(open(sys.argv[1], encoding="utf-8"))
problems = []
here = "%d.%d" % sys.version_info[:2]
if here != m["python"]:
    problems.append(f"the bundle is for Python {m['python']}, but {sys.executable} is Python {here}; "
                    f"pass --python python{m['python']} or make a bundle with --python {here}")
plat = f"{sys.platform}-{platform.machine()}"
if plat != m["platform"]:
    problems.append(f"the bundle is for {m['platform']}, but this machine is {plat}")
need = m.get("min_glibc")
libc, version = platform.libc_ver()
if need and (libc != "glibc" or tuple(map(int, version.split("."))) < tuple(map(int, need.split(".")))):
    problems.append(f"the wheels need glibc {need} or newer; this machine has {libc or 'no glibc'} {version}")
try:
    import venv  # noqa: F401
except ImportError:
    problems.append("Python's venv module is missing (Debian/Ubuntu: the python3-venv package)")
for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
mapfile -t REQS < <("$PY" -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["requirements"]))' bundle.json)
mapfile -t DEMO < <("$PY" -c 'import json, sys; print(int(bool(json.load(open(sys.argv[1])).get("demo_data"))))' bundle.json)
PIP_WHEELS=(wheels/pip-*.whl)
[ -f "${PIP_WHEELS[0]}" ] || refuse "the bundle has no pip wheel."

# ---- 3. the environment -------------------------------------------------------------------------------
CREATED=0
if [ -e "$PREFIX" ] && [ -n "$(ls -A "$PREFIX" 2>/dev/null)" ]; then
  if [ -f "$PREFIX/pyvenv.cfg" ] && [ -x "$PREFIX/bin/bendi" ]; then
    echo "Upgrading the bendi installation in $PREFIX."
  else
    refuse "$PREFIX exists and is not a bendi installation; choose another --prefix or empty it."
  fi
else
  CREATED=1
fi
cleanup() {
  code=$?
  if [ "$code" != 0 ] && [ "$CREATED" = 1 ]; then
    rm -rf "$PREFIX"
    echo "install.sh: the installation failed; $PREFIX was removed again." >&2
  fi
}
trap cleanup EXIT
if [ "$CREATED" = 1 ]; then
  mkdir -p "$PREFIX"
  # No ensurepip (Debian keeps it in a separate package): pip runs from its own wheel in the bundle.
  "$PY" -m venv --without-pip "$PREFIX"
fi
echo "Installing ${REQS[*]} into $PREFIX (offline, wheels only)..."
# The bundle alone decides what is installed: no index, no pip configuration of this machine, no sdists.
for var in $(compgen -e | grep '^PIP_' || true); do unset "$var"; done
PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
  "$PREFIX/bin/python" "$BUNDLE/${PIP_WHEELS[0]}/pip" install --quiet --no-index --no-cache-dir \
  --only-binary=:all: --no-compile --find-links "$BUNDLE/wheels" "${REQS[@]}"
# Byte-compile on every core (pip does it on one); a service that may not write its prefix needs the .pyc
# files now. Like pip, a file some package ships that does not compile is no reason to fail.
"$PREFIX/bin/python" -m compileall -q -j 0 "$PREFIX/lib" >/dev/null 2>&1 || true
"$PREFIX/bin/bendi" --version >/dev/null

# ---- 4. models and data ----------------------------------------------------------------------------------
# The service keeps its data in its own directory (/var/lib/bendi unless BENDI_HOME says otherwise): the
# models and the demo go there, and `service install --chown-data` hands it to the service's account.
if [ "$SERVICE" = 1 ]; then
  export BENDI_HOME=${BENDI_HOME:-/var/lib/bendi}
fi
"$PREFIX/bin/bendi" bundle import-models "$BUNDLE"
if [ "${DEMO[0]}" = 1 ]; then
  if "$PREFIX/bin/bendi" kb demo --help >/dev/null 2>&1; then
    "$PREFIX/bin/bendi" kb demo
  else
    echo "note: this bendi has no \`bendi kb demo\`; the demo knowledge base was not created." >&2
  fi
fi
CREATED=0 # installed: a failure to start below leaves the installation in place
echo "bendi $("$PREFIX/bin/bendi" --version | cut -d' ' -f2) is installed: $PREFIX/bin/bendi (${SECONDS}s)."
[ -n "$(command -v bendi || true)" ] || echo "Add $PREFIX/bin to PATH, or: ln -s $PREFIX/bin/bendi /usr/local/bin/bendi"

# ---- 5. start ------------------------------------------------------------------------------------------
if [ "$SERVICE" = 1 ]; then
  exec "$PREFIX/bin/bendi" service install --home "$BENDI_HOME" --chown-data
fi
if [ "$START" = 0 ]; then
  exit 0
fi
HOME_DIR=${BENDI_HOME:-$HOME/.bendi}
mkdir -p "$HOME_DIR/logs"
LOG=$HOME_DIR/logs/bendi-up.log
nohup "$PREFIX/bin/bendi" up >"$LOG" 2>&1 &
PID=$!
URL=$("$PREFIX/bin/python" -c 'from bendi.core.settings import load_settings as l; s = l(); print(f"http://{s.host}:{s.port}")')
for _ in $(seq 1 120); do
  if "$PREFIX/bin/python" -c "import urllib.request as u; u.urlopen('$URL/health', timeout=2)" 2>/dev/null; then
    echo "bendi is running at $URL (pid $PID, log $LOG). Stop it with: kill $PID"
    exit 0
  fi
  kill -0 "$PID" 2>/dev/null || break
  sleep 1
done
echo "install.sh: bendi is installed but did not come up; see $LOG" >&2
exit 1
