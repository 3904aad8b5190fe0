#!/usr/bin/env bash
# torchrun (torch.distributed.run; torch.distributed.launch is deprecated) of
# one of the tools with --launcher pytorch; used by dist_train.sh/dist_test.sh.
# Usage: tools/dist_launch.sh SCRIPT GPUS [script args...]
# Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host0 PORT=29500 ...
# Python: $PYTHON, an activated venv, else .venv (see find_python.sh).
SCRIPT=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=$(bash "$(dirname "$0")/find_python.sh")
echo "dist_launch: $PYTHON -m torch.distributed.run, $GPUS process(es) per node" >&2

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/$SCRIPT" \
    "${@:3}" \
    --launcher pytorch
