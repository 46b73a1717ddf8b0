#!/usr/bin/env bash
# Bring this machine to what the project needs, and do nothing that is already done:
#   - Python >= 3.11 with the venv module (apt-get installs it if missing),
#   - .venv in the repo root with the project installed editable with its dev extras
#     (reinstalled only when pyproject.toml, the Python version, the repo's location or its
#     top-level packages change: see .venv/.custody-stamp),
#   - with --with-postgres: PostgreSQL server binaries under /usr/lib/postgresql/*/bin
#     (the tests start their own throwaway cluster; no packaged cluster or service is used),
#   - with --with-chromium: Debian's Chromium at /usr/bin/chromium (the inspector's and the
#     worker SDK's tests run a real browser; never `playwright install`, which has no download
#     host here).
#   - with --with-node: clients/typescript's Node packages, `npm ci` from its package-lock.json
#     into clients/typescript/node_modules (nothing global; only the npm registry is reached),
#     again only when the lock file changed. Node >= 20 and npm must be on PATH already.
# Works on Debian/Ubuntu as root or through sudo. One line per step; a failing command's
# output is shown in full.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.custody-stamp"
MIN_PY="3.11"

usage() { echo "usage: $0 [--with-postgres] [--with-chromium] [--with-node]"; }

with_postgres=0
with_chromium=0
with_node=0
for arg in "$@"; do
  case "$arg" in
    --with-postgres) with_postgres=1 ;;
    --with-chromium) with_chromium=1 ;;
    --with-node) with_node=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

# Run a command silently; if it fails, show everything it printed and stop.
quiet() {
  local out rc=0
  out="$(mktemp)"
  "$@" >"$out" 2>&1 </dev/null || rc=$?
  if ((rc != 0)); then
    cat "$out" >&2
    rm -f "$out"
    die "failed (exit $rc): $*"
  fi
  rm -f "$out"
}

as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (run as root or install sudo)"
  fi
}

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
  if ((apt_updated == 0)); then
    say "apt-get update"
    quiet as_root "${apt[@]}" update
    apt_updated=1
  fi
  say "apt-get install $*"
  quiet as_root "${apt[@]}" install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

py_ok() { "$1" -c "import sys; sys.exit(sys.version_info < (${MIN_PY/./, }))" >/dev/null 2>&1; }

# The first Python >= MIN_PY on PATH, preferring plain python3.
find_python() {
  local cand
  for cand in python3 python3.13 python3.12 python3.11; do
    if command -v "$cand" >/dev/null 2>&1 && py_ok "$cand"; then
      echo "$cand"
      return 0
    fi
  done
  return 1
}

# --- Python and .venv ---------------------------------------------------------------------
if [[ -x "$VENV/bin/python" ]] && py_ok "$VENV/bin/python"; then
  say ".venv present ($("$VENV/bin/python" -V 2>&1))"
else
  if [[ -e "$VENV" ]]; then
    say "removing unusable .venv"
    rm -rf "$VENV"
  fi
  if ! py="$(find_python)"; then
    apt_install python3 python3-venv
    py="$(find_python)" || apt_install python3.11 python3.11-venv
    py="$(find_python)" || die "no Python >= $MIN_PY available"
  fi
  say "creating .venv with $py ($("$py" -V 2>&1))"
  if ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
    # Debian/Ubuntu ship venv's ensurepip separately.
    rm -rf "$VENV"
    if [[ "$py" == python3 ]]; then apt_install python3-venv; else apt_install "$py-venv"; fi
    quiet "$py" -m venv "$VENV"
  fi
fi

# --- the project, editable, with dev extras -----------------------------------------------
# The editable install maps top-level packages to absolute paths, so the stamp covers the
# repo's location and its top-level packages as well as pyproject.toml and the Python version.
stamp() {
  {
    sha256sum "$ROOT/pyproject.toml"
    "$VENV/bin/python" -V 2>&1
    (shopt -s nullglob && cd "$ROOT" && printf '%s\n' */__init__.py)
  } | sha256sum | cut -d' ' -f1
}
want="$(stamp)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/pytest" && -x "$VENV/bin/ruff" ]]; then
  say "project installed, up to date with pyproject.toml"
else
  say "pip install -e '.[dev]' (takes a while on a fresh venv)"
  rm -f "$STAMP"
  # The distribution was called custody before it became profile-custody; an old editable
  # install left beside the new one would put a second finder for the same packages on the path.
  if "$VENV/bin/python" -m pip show -q custody >/dev/null 2>&1; then
    quiet "$VENV/bin/python" -m pip uninstall -q -y --disable-pip-version-check custody
  fi
  (cd "$ROOT" && quiet "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]')
  echo "$want" >"$STAMP"
fi

# --- PostgreSQL server binaries -----------------------------------------------------------
# The newest /usr/lib/postgresql/<version>/bin that has initdb (sort -V: 10 after 9).
find_pg_bin() {
  local d best=""
  while read -r d; do
    if [[ -x "$d/initdb" ]]; then best="$d"; fi
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
  [[ -n "$best" ]] && echo "$best"
}

if ((with_postgres)); then
  if pg_bin="$(find_pg_bin)"; then
    say "PostgreSQL present ($pg_bin)"
  else
    # No packaged cluster: the tests start their own, so a 'main' cluster and its service
    # would only hold port 5432 and memory. postgresql-common reads this before installing.
    dpkg -s postgresql-common >/dev/null 2>&1 || apt_install postgresql-common
    conf=/etc/postgresql-common/createcluster.conf
    if [[ -f "$conf" ]]; then
      quiet as_root sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' "$conf"
    fi
    apt_install postgresql
    pg_bin="$(find_pg_bin)" || die "postgresql installed, but no initdb under /usr/lib/postgresql/*/bin"
    say "PostgreSQL installed ($pg_bin)"
  fi
  if ((EUID == 0)) && ! id -u postgres >/dev/null 2>&1; then
    die "running as root but there is no 'postgres' OS user to run the test cluster as"
  fi
fi

# --- Chromium ------------------------------------------------------------------------------
if ((with_chromium)); then
  if [[ -x /usr/bin/chromium ]]; then
    say "Chromium present (/usr/bin/chromium)"
  else
    apt_install chromium
    [[ -x /usr/bin/chromium ]] || die "chromium installed, but there is no /usr/bin/chromium"
    say "Chromium installed (/usr/bin/chromium)"
  fi
fi

# --- Node packages of the TypeScript client -----------------------------------------------
# The TypeScript client's and the example Node worker's tests (npm test, run by
# tests/integration/test_node_worker.py) need clients/typescript/node_modules, installed
# exactly as package-lock.json pins it. `npm ci` starts from an empty node_modules each time,
# so a stamp of the lock file skips it when nothing changed.
if ((with_node)); then
  CLIENT="$ROOT/clients/typescript"
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    || die "node and npm not found: install Node >= 20 (Debian's nodejs package is older)"
  node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
    || die "Node $(node --version) is too old for clients/typescript: it needs >= 20"
  node_stamp="$CLIENT/node_modules/.custody-stamp"
  node_want="$( (sha256sum "$CLIENT/package-lock.json"; node --version) | sha256sum | cut -d' ' -f1)"
  if [[ -f "$node_stamp" && "$(cat "$node_stamp")" == "$node_want" ]]; then
    say "Node packages installed, up to date with clients/typescript/package-lock.json"
  else
    say "npm ci --prefix clients/typescript"
    quiet npm ci --prefix "$CLIENT" --no-audit --no-fund
    echo "$node_want" >"$node_stamp"
  fi
fi

say "ready"
