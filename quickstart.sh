#!/usr/bin/env bash
# The whole pipeline on the embedded digits data, on the CPU, in a few minutes. Sets up ./.venv first if needed.
set -euo pipefail
cd "$(dirname "$0")"
PY=$(bash scripts/setup_env.sh)
exec "$PY" -m pipeline.demo "$@"
