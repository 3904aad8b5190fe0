"""Train the Fashion-MNIST teacher, then the student alone and with KD, DKD
and GDKD over several seeds; report test accuracy (mean, sample std).

    bash tools/get_fashion_mnist.sh          # once: data/fashion_mnist
    python tools/cls_fashion_mnist_sweep.py [--seeds 0 1 2] [--threads 2]
        [--work-dir work_dirs/fashion_mnist] [--doc docs/classification.md]

Runs the configs in configs/cls/fashion_mnist/ unchanged (except seed,
work_dir and the teacher checkpoint) with mmengine's Runner, on CPU. The
teacher is trained once (seed 0) and shared by every student. Writes
``results.json`` and ``results.md`` to the work dir and, with ``--doc``,
replaces the table between the markers in that file.
"""
import argparse
import json
import os.path as osp
import re
import statistics
import time

import torch
from mmengine.config import Config
from mmengine.runner import Runner

import gdkd_seg  # noqa: F401  (compat layer)

CONFIG_DIR = 'configs/cls/fashion_mnist'
SUFFIX = '1xb64-5e_fashion-mnist-5k.py'
TEACHER = 'teacher_resnet8w8_1xb64-10e_fashion-mnist-5k.py'
STUDENTS = {
    'student alone': f'student_resnet8w4_{SUFFIX}',
    'KD': f'kd_resnet8w8_resnet8w4_{SUFFIX}',
    'DKD': f'dkd_resnet8w8_resnet8w4_{SUFFIX}',
    'GDKD': f'gdkd_resnet8w8_resnet8w4_{SUFFIX}',
}
TABLE_START = '<!-- fashion-mnist-table:start -->'
TABLE_END = '<!-- fashion-mnist-table:end -->'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch CPU threads. Default 1: on a shared 2-core machine '
        'two threads wait on each other and ran up to 10x slower')
    parser.add_argument('--work-dir', default='work_dirs/fashion_mnist')
    parser.add_argument(
        '--doc',
        help='markdown file whose table (between the markers) to '
        'replace, e.g. docs/classification.md')
    return parser.parse_args()


def train_and_test(config: str,
                   work_dir: str,
                   seed: int,
                   teacher_ckpt: str = None) -> dict:
    """Train ``config`` from scratch, test the final model; return top-1 and
    the wall time."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, config))
    cfg.work_dir = work_dir
    cfg.experiment_name = osp.basename(work_dir)
    cfg.randomness = dict(seed=seed)
    # Only the final model is reported: skip validation during training.
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    if cfg.model.type == 'ClsDistiller':
        cfg.model.teacher_ckpt = teacher_ckpt
    start = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    return dict(
        top1=float(metrics['accuracy/top1']),
        seconds=round(time.time() - start, 1),
        checkpoint=osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth'))


def summarise(results: dict, args, wall: float) -> str:

    def row(name, runs):
        accs = [r['top1'] for r in runs]
        mean = f'{statistics.mean(accs):.2f}'
        if len(accs) > 1:
            mean += f' ± {statistics.stdev(accs):.2f}'
        per_seed = ', '.join(f'{a:.2f}' for a in accs)
        secs = statistics.mean(r['seconds'] for r in runs)
        return f'| {name} | {mean} | {per_seed} | {secs:.0f} |'

    lines = [
        '| model | top-1 (%) mean ± std | per seed | s / run |',
        '| --- | --- | --- | --- |',
        row('teacher ResNet-8w8 (seed 0)', [results['teacher']]),
    ]
    lines += [
        row(f'ResNet-8w4, {method}', results['students'][method])
        for method in STUDENTS
    ]
    lines.append('')
    lines.append(
        f'Seeds {", ".join(map(str, args.seeds))}; std is the sample '
        f'standard deviation over seeds. torch {torch.__version__} on '
        f'{args.threads} CPU thread(s); whole sweep {wall / 60:.1f} min.')
    return '\n'.join(lines)


def replace_table(doc: str, table: str) -> None:
    with open(doc, encoding='utf-8') as f:
        text = f.read()
    pattern = re.compile(
        re.escape(TABLE_START) + '.*?' + re.escape(TABLE_END), re.S)
    if not pattern.search(text):
        raise ValueError(f'{doc} has no {TABLE_START} ... {TABLE_END} block')
    text = pattern.sub(lambda _: f'{TABLE_START}\n{table}\n{TABLE_END}', text)
    with open(doc, 'w', encoding='utf-8') as f:
        f.write(text)


def main():
    args = parse_args()
    data_root = Config.fromfile(osp.join(
        CONFIG_DIR, TEACHER)).train_dataloader.dataset.data_root
    if not osp.isfile(osp.join(data_root, 'train-images-idx3-ubyte')):
        raise SystemExit(f'Fashion-MNIST is not in {data_root}: run '
                         '`bash tools/get_fashion_mnist.sh` first.')
    torch.set_num_threads(args.threads)
    start = time.time()
    teacher = train_and_test(TEACHER, osp.join(args.work_dir, 'teacher'), 0)
    results = dict(teacher=teacher, students={m: [] for m in STUDENTS})
    for seed in args.seeds:
        for method, config in STUDENTS.items():
            name = method.replace(' ', '_').lower()
            results['students'][method].append(
                dict(
                    seed=seed,
                    **train_and_test(
                        config,
                        osp.join(args.work_dir, f'{name}_seed{seed}'),
                        seed,
                        teacher_ckpt=teacher['checkpoint'])))
    wall = time.time() - start
    table = summarise(results, args, wall)
    results.update(
        seeds=args.seeds,
        threads=args.threads,
        torch=torch.__version__,
        wall_seconds=round(wall, 1))
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    if args.doc:
        replace_table(args.doc, table)
    print(table)


if __name__ == '__main__':
    main()
