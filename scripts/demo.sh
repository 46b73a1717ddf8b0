#!/usr/bin/env bash
# Run the demo: make sure the venv is ready, then hand over to `custody demo "$@"`.
# The current directory is kept, so relative paths in the arguments mean what they say.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bash "$ROOT/scripts/bootstrap.sh"
exec "$ROOT/.venv/bin/custody" demo "$@"
