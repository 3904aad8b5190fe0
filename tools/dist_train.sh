#!/usr/bin/env bash
# Multi-GPU / multi-node training with torchrun.
# Usage: tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host0 tools/dist_train.sh ...
exec bash "$(dirname "$0")/dist_launch.sh" train.py "$2" "$1" "${@:3}"
