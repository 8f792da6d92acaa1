#!/usr/bin/env bash
# Create ./.venv from requirements.txt (exact versions from constraints.txt), once; re-run only when one of
# requirements.txt, constraints.txt or pyproject.toml changes. Prints the python path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want=$(cat "$root/requirements.txt" "$root/constraints.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up $venv (once; a few minutes)" >&2
  python3 -m venv "$venv"
  (cd "$root" && "$venv/bin/pip" install -q --disable-pip-version-check -r requirements.txt -c constraints.txt) >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
