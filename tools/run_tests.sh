#!/usr/bin/env bash
# Set up .venv (tools/setup_env.sh) and run the whole test suite, slow
# end-to-end tests included. Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup_env.sh
# Fashion-MNIST for the classification run (Debian's dataset-fashion-mnist,
# installed when root); without it that one test is skipped with the reason.
bash tools/dataset_converters/get_fashion_mnist.sh || echo "Fashion-MNIST unavailable: its test will skip"
VENV=${VENV:-.venv}
exec "$VENV/bin/python" -m pytest "$@"
