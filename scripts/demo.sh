#!/usr/bin/env bash
# Run the demo: make sure the venv is ready, then hand over to `custody demo "$@"`.
# With --browser the fleet's workers drive Chromium: Debian's is installed when missing.
# The current directory is kept, so relative paths in the arguments mean what they say.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

wants=()
for arg in "$@"; do
  if [[ "$arg" == "--browser" ]]; then
    wants=(--with-chromium)
  fi
done
bash "$ROOT/scripts/bootstrap.sh" "${wants[@]}"
exec "$ROOT/.venv/bin/custody" demo "$@"
