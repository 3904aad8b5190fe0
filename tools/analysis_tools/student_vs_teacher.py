"""What distillation buys: the student against its teacher, in one table
and one figure.

    python tools/analysis_tools/student_vs_teacher.py CONFIG TEACHER_CKPT \
        STUDENT_CKPT --out DIR [--shape H W] [--threads N] [--repeats N] \
        [--teacher-dir DIR] [--student-dir DIR] [--distilled-dir DIR]

CONFIG is a distillation config, TEACHER_CKPT its teacher's weights and
STUDENT_CKPT the distillation checkpoint. For each model: parameters of the
deployed network (no auxiliary head), FLOPs (mmengine's counter), the median
latency per image on CPU in PyTorch and in onnxruntime (the ONNX export of
tools/deploy/export_onnx.py), warm-up excluded, on --threads threads, and
the peak memory of a PyTorch forward (weights plus activations); with the
runs' work dirs, the mIoU of their last validation, also of the student
trained alone. Writes DIR/student_vs_teacher.{md,json,png}.
"""
import argparse
import json
import os
import os.path as osp

import gdkd_seg  # noqa: F401  (mmcv-lite shim)
from gdkd_seg.analysis import (cost_table, measurement_caption,
                               plot_student_vs_teacher, student_vs_teacher)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the distillation config')
    parser.add_argument('teacher_checkpoint')
    parser.add_argument('student_checkpoint',
                        help='the distillation checkpoint')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 1024],
                        metavar=('H', 'W'), help='image size measured')
    parser.add_argument('--threads', type=int, default=1,
                        help='intra-op threads of PyTorch and onnxruntime')
    parser.add_argument('--repeats', type=int, default=20,
                        help='timed runs per model (the median is kept)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed runs before them')
    parser.add_argument('--name', default='distilled student',
                        help="the distilled student's name in the table")
    for role in ('teacher', 'student', 'distilled'):
        parser.add_argument(
            f'--{role}-dir', help=f'work dir of the {role} run (its last '
            'validation mIoU)' + (', trained alone' if role == 'student'
                                  else ''))
    return parser.parse_args()


def main():
    args = parse_args()
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    work_dirs = {role: getattr(args, f'{role}_dir')
                 for role in ('teacher', 'student', 'distilled')
                 if getattr(args, f'{role}_dir')}
    rows = student_vs_teacher(
        args.config, args.teacher_checkpoint, args.student_checkpoint,
        tuple(args.shape), args.threads, args.repeats, args.warmup,
        work_dirs, args.name)
    table = cost_table(rows)
    text = measurement_caption(args.shape, args.threads, args.repeats)
    print(f'{table}\n\n{text}')
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'student_vs_teacher.md'), 'w') as f:
        f.write(f'{table}\n\n{text}\n')
    with open(osp.join(args.out, 'student_vs_teacher.json'), 'w') as f:
        json.dump(dict(shape=args.shape, threads=args.threads,
                       repeats=args.repeats, warmup=args.warmup, rows=rows),
                  f, indent=1)
    plot_student_vs_teacher(rows, osp.join(args.out,
                                           'student_vs_teacher.png'), text)
    for name in ('md', 'json', 'png'):
        print(f'wrote {osp.join(args.out, "student_vs_teacher." + name)}')


if __name__ == '__main__':
    main()
