#!/usr/bin/env bash
# Everything the fused loss needs a GPU for, in one call: the fused-vs-plain
# tests on CUDA, the loss benchmark (reference design, plain, fused; fp32 and
# bf16), the two Triton kernels and block sizes, the other losses with an
# ignore mask, and the full distillation step. Logs and JSON go to $OUT (default
# work_dirs/gpu_check).
#
# Run from the repository root (or a copy of gdkd_seg/, tests/, tools/ and
# setup.cfg). WHEELS names a folder of the OpenMMLab wheels to install first
# (shared/gpu-wheels/README.md), for a machine without a package index.
set -uo pipefail
OUT=${OUT:-work_dirs/gpu_check}
mkdir -p "$OUT"
# An ignored .whl/ in the checkout (shared/gpu-wheels/README.md) is used
# when WHEELS is not set.
if [ -z "${WHEELS:-}" ] && [ -d .whl ]; then
    WHEELS=.whl
fi
if [ -n "${WHEELS:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile \
        --target /tmp/site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

run() {  # name timeout_s command...
    local name=$1 limit=$2
    shift 2
    echo "=== $name: $*"
    timeout "$limit" "$@" 2>&1 | grep -v -e '^The value is the same' \
        -e 'init_weights' -e ' - torch.Size' | tee "$OUT/$name.log"
    echo "=== $name exit ${PIPESTATUS[0]}"
}

nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm \
    --format=csv | tee "$OUT/device.log"
$PY -c 'import torch, triton; print("torch", torch.__version__, "triton",
triton.__version__, torch.cuda.get_device_name())' | tee -a "$OUT/device.log"

STEPS=${STEPS:-loss kernels distill_step losses_ignore tests}
for step in $STEPS; do
    case $step in
    loss) run loss 140 $PY tools/analysis_tools/benchmark_loss.py \
        --dtypes float32 bfloat16 --repeats 30 --out "$OUT/loss.json" ;;
    losses_ignore) run losses_ignore 60 $PY \
        tools/analysis_tools/benchmark_loss.py --losses kd dkd gdkd gdkd3 \
        --methods plain fused --ignore 0.2 --repeats 20 \
        --shapes 8x19x64x128 8x19x512x1024 --out "$OUT/losses_ignore.json" ;;
    # The two Triton kernels on maps, and the thread-per-pixel kernel's
    # block sizes (one pixel per thread at 32:1 .. 128:4, two at 256:4).
    kernels) run kernels 80 $PY tools/analysis_tools/benchmark_loss.py \
        --methods fused:tile fused:class_loop fused:class_loop:32:1 \
        fused:class_loop:64:2 fused:class_loop:256:8 \
        fused:class_loop:256:4 --dtypes float32 bfloat16 \
        --shapes 8x19x64x128 8x19x512x1024 --repeats 20 \
        --out "$OUT/kernels.json" ;;
    # Kernel variants compile on first use (seconds each): a focused subset.
    # Both kernels ('triton' picks class_loop for these maps, 'triton-tile'
    # forces the tile kernel): every loss, the numerics cases, the limits.
    tests) run tests 170 $PY -m pytest -q -p no:cacheprovider \
        -W ignore::RuntimeWarning tests/test_fused.py -k "triton and \
        (equals_plain or extreme or ties or all_ignored or half or clamps \
        or limits) or gpu_kernel_at_segmentation_size" ;;
    distill_step) run distill_step 110 $PY \
        tools/analysis_tools/benchmark_distill_step.py --batch 8 \
        --out "$OUT/distill_step.json" ;;
    esac
done
