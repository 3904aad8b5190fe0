#!/usr/bin/env bash
# Print the Python interpreter the launchers run, first found of:
#   $PYTHON                     (set it to choose explicitly)
#   $VIRTUAL_ENV/bin/python     (an activated virtual environment)
#   <repo>/${VENV:-.venv}/bin/python  (the one tools/setup_env.sh makes)
#   python                      (whatever is on PATH)
# so tools/dist_train.sh and friends work right after the Quick start,
# without activating .venv. A conda environment counts as "python on PATH":
# with .venv also present, set PYTHON=python to use conda's.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-.venv}"
case "$venv" in /*) ;; *) venv="$repo/$venv" ;; esac
if [ -n "${PYTHON:-}" ]; then
  echo "$PYTHON"
elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
  echo "$VIRTUAL_ENV/bin/python"
elif [ -x "$venv/bin/python" ]; then
  echo "$venv/bin/python"
else
  echo python
fi
