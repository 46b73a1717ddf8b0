#!/usr/bin/env bash
# The one command that runs every check, in order, stopping at the first that fails:
# formatting, lint, types, import contracts, tests. Extra arguments go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.venv/bin"

# --with-node: `npm ci --prefix clients/typescript`, for the TypeScript client's and the Node
# worker's tests (tests/integration/test_node_worker.py runs npm test there).
bash "$ROOT/scripts/bootstrap.sh" --with-postgres --with-chromium --with-node
cd "$ROOT"

step() {
  local name="$1" rc=0
  shift
  printf '\n=== %s ===\n' "$name"
  "$@" || rc=$?
  if ((rc != 0)); then
    printf '\n=== FAILED: %s (exit %d) ===\n' "$name" "$rc" >&2
    exit "$rc"
  fi
}

step "ruff format --check" "$BIN/ruff" format --check .
step "ruff check" "$BIN/ruff" check .
step "mypy" "$BIN/mypy"
step "lint-imports" "$BIN/lint-imports"
step "pytest" "$BIN/pytest" "$@"
printf '\n=== all checks passed ===\n'
