#!/usr/bin/env bash
# Multi-GPU testing with torchrun.
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
exec bash "$(dirname "$0")/dist_launch.sh" test.py "$3" "$1" "$2" "${@:4}"
