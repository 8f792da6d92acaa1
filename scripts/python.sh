# Sourced by the shell entry points: $PY is the project's venv python when it exists, else python3 (or $PYTHON).
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x "$_root/.venv/bin/python" ]; then PY="$_root/.venv/bin/python"
else PY=python3; fi
