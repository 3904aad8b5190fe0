#!/usr/bin/env bash
# Set up .venv (tools/setup_env.sh) and run the demo: synthetic Cityscapes-format
# data, a teacher, and the student alone / KD / DKD / GDKD (tools/demo.py).
# Extra arguments go to tools/demo.py, e.g. --seeds 0 1 2 or --restart.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup_env.sh
VENV=${VENV:-.venv}
exec "$VENV/bin/python" tools/demo.py "$@"
