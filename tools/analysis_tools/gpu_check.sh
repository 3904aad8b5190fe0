#!/usr/bin/env bash
# Everything the fused loss needs a GPU for, in one device command of at
# most 10 minutes (the steps' timeouts add up to 9 minutes): the loss
# benchmark (reference design, plain, fused; fp32 and bf16), the two Triton
# kernels and block sizes, deeper cuts and the per-row cut, the four losses
# with an ignore mask, the full distillation step, and the fused tests on
# CUDA: both kernels against the plain path, the NaN rule, the labels
# checked on the device, the first-use verification and the fallbacks.
# Logs and JSON go to $OUT (default work_dirs/gpu_check).
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

STEPS=${STEPS:-loss kernels cuts distill_step losses_ignore tests}
for step in $STEPS; do
    case $step in
    loss) run loss 110 $PY tools/analysis_tools/benchmark_loss.py \
        --dtypes float32 bfloat16 --repeats 30 --out "$OUT/loss.json" ;;
    losses_ignore) run losses_ignore 55 $PY \
        tools/analysis_tools/benchmark_loss.py --losses kd dkd gdkd gdkd3 \
        --methods plain fused --ignore 0.2 --repeats 20 \
        --shapes 8x19x64x128 8x19x512x1024 --out "$OUT/losses_ignore.json" ;;
    # The two Triton kernels on maps, and the thread-per-pixel kernel's
    # block sizes (one pixel per thread at 32:1 .. 128:4, two at 256:4).
    kernels) run kernels 65 $PY tools/analysis_tools/benchmark_loss.py \
        --methods fused:tile fused:class_loop fused:class_loop:32:1 \
        fused:class_loop:64:2 fused:class_loop:256:8 \
        fused:class_loop:256:4 --dtypes float32 bfloat16 \
        --shapes 8x19x64x128 8x19x512x1024 --repeats 20 \
        --out "$OUT/kernels.json" ;;
    # Cut points 1, 3, 6 (4 groups) and the per-row cut (max_k 8): plain,
    # the default kernel (class loop) and the tile kernel.
    cuts) run cuts 45 $PY tools/analysis_tools/benchmark_loss.py \
        --losses gdkd_cuts gdkd_adaptive --methods plain fused fused:tile \
        --ignore 0.2 --repeats 20 --shapes 8x19x64x128 8x19x512x1024 \
        --out "$OUT/cuts.json" ;;
    # Kernel variants compile on first use (seconds each): a focused subset.
    # Both kernels ('triton' picks class_loop for these maps, 'triton-tile'
    # forces the tile kernel): every loss, the numerics cases, the limits,
    # deeper and per-row cuts, the NaN rule, labels that are no class (the
    # device check), the first-use verification and the fallbacks. A kernel
    # that disagrees with the plain path on its first call fails the run.
    tests) run tests 170 $PY -m pytest -q -p no:cacheprovider \
        -W ignore::RuntimeWarning \
        -W "error:the class_loop Triton kernel:UserWarning" \
        -W "error:the tile Triton kernel:UserWarning" \
        tests/test_fused.py tests/test_fused_trust.py -k "triton and \
        (equals_plain or extreme or ties or all_ignored or half or limits \
        or deeper or beyond or non_finite or outside or empty \
        or ignore_index_none) or device_raise or wrong_kernel \
        or compile_failure or gpu" ;;
    distill_step) run distill_step 95 $PY \
        tools/analysis_tools/benchmark_distill_step.py --batch 8 \
        --out "$OUT/distill_step.json" ;;
    esac
done
