#!/usr/bin/env bash
# Training on a Slurm cluster, one task per GPU.
# Usage: [GPUS=8] [GPUS_PER_NODE=8] tools/slurm_train.sh PARTITION JOB CONFIG [train.py args...]
exec bash "$(dirname "$0")/slurm_launch.sh" train.py "$@"
