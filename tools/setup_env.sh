#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv with the tested
# versions (requirements/ci.txt) and gdkd_seg installed in editable mode.
# Needs only Python 3.11 (3.9+) and pip. Idempotent: re-installs only when a
# requirements file or setup.py changed. Override the location with VENV=...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
stamp="$VENV/.gdkd_seg_installed"
want=$(cat requirements/*.txt setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -r requirements/ci.txt
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import gdkd_seg, mmseg; print('gdkd_seg', gdkd_seg.__version__, 'mmseg', mmseg.__version__)"
echo "$want" > "$stamp"
