"""Gradient magnitudes on the teacher's top-k vs non-top logits under KD, DKD
and GDKD (the paper's first mechanism check).

    python tools/analysis_tools/grad_magnitudes.py CONFIG TEACHER_CKPT \
        STUDENT_CKPT --out DIR [--max-batches N] [--k 3]

CONFIG is a distillation config (its teacher and student are built) or a
plain segmentor config. Each loss's autograd gradient on the student's
decode-head logits is measured per valid pixel of the validation set.
Writes DIR/grad_magnitudes.json and DIR/grad_magnitudes.png; see
docs/analysis.md.
"""
import argparse
import json
import os
import os.path as osp

import gdkd_seg  # noqa: F401  (registers the losses, mmcv-lite shim)
from gdkd_seg.analysis import measure_gradient_magnitudes, \
    plot_gradient_magnitudes
from gdkd_seg.analysis.models import add_data_args


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('teacher_checkpoint')
    parser.add_argument('student_checkpoint')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--k', type=int, default=3,
                        help="size of the teacher's top group (and GDKD's k)")
    parser.add_argument('--temperature', type=float, default=1.0)
    add_data_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    summary = measure_gradient_magnitudes(
        args.config, args.teacher_checkpoint, args.student_checkpoint,
        k=args.k, temperature=args.temperature, max_batches=args.max_batches,
        split=args.split, data_root=args.data_root, head=args.head,
        device=args.device)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'grad_magnitudes.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    plot_gradient_magnitudes(summary,
                             osp.join(args.out, 'grad_magnitudes.png'))
    print(f'{summary["pixels"]} pixels, mean |dL/ds| per logit:')
    print('loss    top-k     non-top   (within)  non-top/top')
    for name, loss in summary['losses'].items():
        print(f'{name:6s}  {loss["mean_abs_grad_top"]:.2e}  '
              f'{loss["mean_abs_grad_rest"]:.2e}  '
              f'{loss["mean_abs_grad_rest_within"]:.2e}  '
              f'{loss["rest_to_top_ratio"]:.3f}')
    print(f'wrote grad_magnitudes.json and grad_magnitudes.png to {args.out}')


if __name__ == '__main__':
    main()
