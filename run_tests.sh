#!/usr/bin/env bash
# The test suite (CPU, offline). Sets up ./.venv first if needed. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
PY=$(bash scripts/setup_env.sh)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec "$PY" -m pytest -q tests "$@"
