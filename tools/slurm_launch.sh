#!/usr/bin/env bash
# srun of one of the tools on a Slurm cluster, one task per GPU, with
# --launcher slurm; used by slurm_train.sh/slurm_test.sh.
# Usage: [GPUS=8] [GPUS_PER_NODE=8] tools/slurm_launch.sh SCRIPT PARTITION JOB [script args...]
# Python: $PYTHON, an activated venv, else .venv (see find_python.sh); the
# tasks need the same path on the compute nodes (a shared file system).
set -x
SCRIPT=$1
PARTITION=$2
JOB_NAME=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=$(bash "$(dirname "$0")/find_python.sh")

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$(dirname "$0")/$SCRIPT" "${@:4}" --launcher=slurm
