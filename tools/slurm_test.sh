#!/usr/bin/env bash
# Testing on a Slurm cluster, one task per GPU.
# Usage: [GPUS=8] tools/slurm_test.sh PARTITION JOB CONFIG CHECKPOINT [test.py args...]
exec bash "$(dirname "$0")/slurm_launch.sh" test.py "$@"
