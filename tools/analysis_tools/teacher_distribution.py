"""The teacher's predictive distribution over a data set: how often it is
multimodal, mass in its top-k, entropy, the adaptive k, per class and as maps
over images, and its calibration (ECE, reliability diagram).

    python tools/analysis_tools/teacher_distribution.py CONFIG TEACHER_CKPT \
        --out DIR [--resolution logits|image] [--max-batches N]

CONFIG is a distillation config (its teacher is used) or a plain segmentor
config. Writes DIR/teacher_distribution.json and the figures
distribution.png, per_class.png, reliability.png and maps.png; see
docs/analysis.md for the definitions.
"""
import argparse
import json
import os
import os.path as osp

import gdkd_seg  # noqa: F401  (mmcv-lite shim)
from gdkd_seg.analysis import (measure_teacher_distribution,
                               plot_distribution_per_class,
                               plot_reliability, plot_teacher_distribution,
                               plot_teacher_maps)
from gdkd_seg.analysis.models import add_data_args


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('teacher_checkpoint')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--temperature', type=float, default=1.0)
    parser.add_argument(
        '--taus', type=float, nargs='+', default=[0.5, 0.9, 0.95, 0.99],
        help='shares of teacher mass for the adaptive k')
    parser.add_argument(
        '--resolution', default='logits', choices=['logits', 'image'],
        help="the head's grid (what distillation sees) or the label map's")
    parser.add_argument('--num-maps', type=int, default=4,
                        help='images in maps.png')
    add_data_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    summary, images, maps = measure_teacher_distribution(
        args.config, args.teacher_checkpoint, temperature=args.temperature,
        taus=args.taus, resolution=args.resolution, num_maps=args.num_maps,
        max_batches=args.max_batches, split=args.split,
        data_root=args.data_root, head=args.head, device=args.device)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'teacher_distribution.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    plot_teacher_distribution(summary, osp.join(args.out,
                                                'distribution.png'))
    tau = str(0.9 if 0.9 in args.taus else args.taus[0])
    plot_distribution_per_class(summary, osp.join(args.out, 'per_class.png'),
                                tau=tau)
    plot_reliability(summary, osp.join(args.out, 'reliability.png'))
    if images:
        plot_teacher_maps(images, maps, summary['palette'],
                          osp.join(args.out, 'maps.png'))
    adaptive = ', '.join(f'{t}: {v["mean"]:.2f}'
                         for t, v in summary['adaptive_k'].items())
    print(f'{summary["pixels"]} pixels ({args.resolution} resolution): '
          f'multimodal {100 * summary["multimodal_fraction"]:.1f}%, '
          f'top-1 < 0.9 {100 * summary["low_confidence_fraction"]:.1f}%, '
          f'mean entropy {summary["mean_entropy"]:.3f} nats, '
          f'accuracy {100 * summary["accuracy"]:.1f}%, '
          f'ECE {100 * summary["ece"]:.2f}%; mean adaptive k by tau '
          f'{adaptive}')
    print(f'wrote teacher_distribution.json and figures to {args.out}')


if __name__ == '__main__':
    main()
