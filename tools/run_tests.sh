#!/usr/bin/env bash
# Set up .venv (tools/setup_env.sh) and run the whole test suite, slow
# end-to-end tests included. Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup_env.sh
VENV=${VENV:-.venv}
exec "$VENV/bin/python" -m pytest "$@"
