"""The whole product on an embedded default: distil a student from nothing.

    python tools/demo.py [--seeds 0 1 2] [--restart] [--iters N]

1. writes the synthetic Cityscapes-format data set if it is missing
   (tools/generate_synthetic_cityscapes.py; same layout, dataset class,
   pipelines and metric as real Cityscapes);
2. trains the demo teacher, then the student alone, with KD, with DKD and
   with GDKD, from the same seed and schedule (configs/demo/, which inherit
   the Cityscapes configs), each through tools/train.py;
3. evaluates every run on the validation split and prints one table (mIoU,
   per-class IoU in summary.json, wall time), and writes figures: mIoU bars,
   per-class IoU, and sample predictions beside the ground truth.

Every run keeps its work dir under --work-dir; a rerun reuses finished runs
(and the data) unless --restart is given.
"""
import argparse
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs', 'demo')
TEACHER = 'teacher_deeplabv3-r18_1xb8-300it_synthetic-cityscapes-128x256.py'
RUNS = {
    'student': 'student_deeplabv3-r18w16_1xb8-300it_synthetic-cityscapes-'
    '128x256.py',
    'KD': 'kd_deeplabv3-r18_deeplabv3-r18w16_1xb8-300it_synthetic-'
    'cityscapes-128x256.py',
    'DKD': 'dkd_deeplabv3-r18_deeplabv3-r18w16_1xb8-300it_synthetic-'
    'cityscapes-128x256.py',
    'GDKD': 'gdkd_deeplabv3-r18_deeplabv3-r18w16_1xb8-300it_synthetic-'
    'cityscapes-128x256.py',
    # Opt-in (--methods ... GDKD-adaptive): per-pixel k (issue: adaptive k).
    'GDKD-adaptive': 'gdkd-adaptive_deeplabv3-r18_deeplabv3-r18w16_1xb8-'
    '300it_synthetic-cityscapes-128x256.py',
}
DEFAULT_METHODS = ['student', 'KD', 'DKD', 'GDKD']


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/synthetic_cityscapes')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument(
        '--methods', nargs='+', default=DEFAULT_METHODS, choices=list(RUNS))
    parser.add_argument(
        '--iters', type=int, help='training iterations of every run '
        '(default: the configs\', 300)')
    parser.add_argument('--num-train', type=int, default=300)
    parser.add_argument('--num-val', type=int, default=60)
    parser.add_argument(
        '--num-samples', type=int, default=4, help='images in samples.png')
    parser.add_argument(
        '--restart', action='store_true', help='retrain every run')
    return parser.parse_args()


class Progress:
    """Overall progress and ETA across runs, from iterations done so far."""

    def __init__(self, total_iters: int) -> None:
        self.total, self.done, self.start = total_iters, 0, time.time()

    def line(self, run_iter: int = 0) -> str:
        done = self.done + run_iter
        elapsed = time.time() - self.start
        eta = elapsed / done * (self.total - done) if done else float('nan')
        return (f'[demo {100 * done / self.total:5.1f}% | elapsed '
                f'{_hms(elapsed)} | eta {_hms(eta)}]')


def _hms(seconds: float) -> str:
    if seconds != seconds:
        return '--:--'
    seconds = int(seconds)
    return f'{seconds // 60:d}:{seconds % 60:02d}'


def final_checkpoint(work_dir: str, iters: int) -> str:
    return osp.join(work_dir, f'iter_{iters}.pth')


def train(name: str, config: str, work_dir: str, options: list, iters: int,
          progress: Progress) -> float:
    """Run tools/train.py, streaming its progress lines. Returns seconds."""
    log_file = osp.join(work_dir, 'demo_train.log')
    os.makedirs(work_dir, exist_ok=True)
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir,
        '--cfg-options', *options
    ]
    print(f'{progress.line()} training {name}: {" ".join(cmd[1:3])}',
          flush=True)
    start = time.time()
    with open(log_file, 'w') as log:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
                     os.environ.get('PYTHONPATH', '')))
        for line in proc.stdout:
            log.write(line)
            match = re.search(r'Iter\(train\) \[\s*(\d+)/', line)
            if match:
                eta = re.search(r'eta: (\S+)', line)
                loss = ' '.join(re.findall(r'(\S*loss\S*: \S+)', line))
                print(f'{progress.line(int(match.group(1)))} {name} '
                      f'iter {match.group(1)}/{iters} (run eta '
                      f'{eta.group(1) if eta else "?"}) {loss}', flush=True)
            elif 'mIoU:' in line:
                print(f'{progress.line(iters)} {name} '
                      f'{line.split(" - INFO - ")[-1].strip()}', flush=True)
        if proc.wait() != 0:
            raise RuntimeError(f'training {name} failed; see {log_file}')
    progress.done += iters
    return time.time() - start


def main():
    args = parse_args()
    os.chdir(ROOT)
    import gdkd_seg  # noqa: F401
    from gdkd_seg.datasets.synthetic_cityscapes import \
        generate_synthetic_cityscapes
    generate_synthetic_cityscapes(
        args.data_root, num_train=args.num_train, num_val=args.num_val,
        seed=0)
    from mmengine.config import Config
    iters = args.iters or Config.fromfile(osp.join(
        CONFIGS, TEACHER)).train_cfg.max_iters
    if args.restart and osp.isdir(args.work_dir):
        shutil.rmtree(args.work_dir)
    os.makedirs(args.work_dir, exist_ok=True)

    def options(seed):
        return [
            f'randomness.seed={seed}', f'train_cfg.max_iters={iters}',
            f'train_cfg.val_interval={iters}', f'param_scheduler.0.end={iters}',
            f'default_hooks.checkpoint.interval={iters}',
            f'default_hooks.logger.interval={max(1, min(50, iters // 10))}',
            f'train_dataloader.dataset.data_root={args.data_root}',
            f'val_dataloader.dataset.data_root={args.data_root}',
            f'test_dataloader.dataset.data_root={args.data_root}'
        ]

    teacher_dir = osp.join(args.work_dir, 'teacher')
    teacher_ckpt = final_checkpoint(teacher_dir, iters)
    runs = [('teacher', None, osp.join(CONFIGS, TEACHER), teacher_dir)] + [
        (method, seed, osp.join(CONFIGS, RUNS[method]),
         osp.join(args.work_dir, f'seed{seed}', method.lower()))
        for seed in args.seeds for method in args.methods
    ]
    todo = [r for r in runs
            if not osp.isfile(final_checkpoint(r[3], iters))]
    progress = Progress(max(1, iters * len(todo)))
    times_file = osp.join(args.work_dir, 'wall_times.json')
    wall = json.load(open(times_file)) if osp.isfile(times_file) else {}
    for name, seed, config, work_dir in todo:
        opts = options(0 if seed is None else seed)
        if name not in ('teacher', 'student'):
            opts.append(f'model.teacher_ckpt={teacher_ckpt}')
        label = name if seed is None else f'{name} (seed {seed})'
        wall[work_dir] = train(label, config, work_dir, opts, iters,
                               progress)
        with open(times_file, 'w') as f:
            json.dump(wall, f, indent=1)

    summarize(args, runs, iters, wall)


def summarize(args, runs, iters, wall):
    """Evaluate every run, print the table, write JSON and figures."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner
    from mmseg.datasets import CityscapesDataset
    from mmseg.utils import register_all_modules

    from gdkd_seg.analysis import (evaluate_segmentor, iterate_logits,
                                   plot_miou_bars, plot_per_class_iou,
                                   plot_samples)
    from gdkd_seg.apis import init_student
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    classes = CityscapesDataset.METAINFO['classes']
    palette = CityscapesDataset.METAINFO['palette']

    results, samples, images = {}, {}, []
    for name, seed, config, work_dir in runs:
        cfg = Config.fromfile(config)
        cfg.val_dataloader.dataset.data_root = args.data_root
        model = init_student(cfg, final_checkpoint(work_dir, iters))
        loader = Runner.build_dataloader(cfg.val_dataloader)
        metrics = evaluate_segmentor(model, loader, len(classes))
        metrics.update(seed=seed, wall_time_s=wall.get(work_dir),
                       work_dir=work_dir)
        results.setdefault(name, []).append(metrics)
        if seed in (None, args.seeds[0]):
            samples[name] = []
            for data, outputs in iterate_logits(model, loader, 1):
                for inputs, out in zip(data['inputs'],
                                       outputs[:args.num_samples]):
                    if name == 'teacher':
                        images.append(inputs.permute(1, 2, 0).numpy()[
                            ..., ::-1].copy())
                        samples.setdefault('ground truth',
                                           []).append(out.gt_sem_seg)
                    samples[name].append(out.pred_sem_seg)

    table = summary_table(results)
    print('\n' + table)
    out = args.work_dir
    with open(osp.join(out, 'summary.json'), 'w') as f:
        json.dump(dict(classes=list(classes), iters=iters, results=results),
                  f, indent=1)
    with open(osp.join(out, 'summary.md'), 'w') as f:
        f.write(table + '\n')
    plot_miou_bars({n: [m['mIoU'] for m in r]
                    for n, r in results.items()},
                   osp.join(out, 'miou.png'),
                   title=f'synthetic Cityscapes val, {iters} iterations')
    plot_per_class_iou(
        {n: np.nanmean([m['IoU'] for m in r], axis=0)
         for n, r in results.items()}, classes,
        osp.join(out, 'per_class_iou.png'))
    order = ['ground truth'] + [n for n in results]
    plot_samples(images, {k: samples[k] for k in order}, classes, palette,
                 osp.join(out, 'samples.png'))
    for name in ('summary.md', 'summary.json', 'miou.png',
                 'per_class_iou.png', 'samples.png'):
        print(f'wrote {osp.join(out, name)}')


def summary_table(results) -> str:
    student = np.mean([m['mIoU'] for m in results.get('student', [])] or
                      [np.nan])
    rows = [
        '| run | seeds | mIoU (%) | vs student | aAcc (%) | wall time |',
        '| --- | --- | --- | --- | --- | --- |'
    ]
    for name, runs in results.items():
        miou = np.array([m['mIoU'] for m in runs])
        spread = f' ± {miou.std(ddof=1):.2f}' if len(miou) > 1 else ''
        delta = '' if name in ('teacher', 'student') else \
            f'{miou.mean() - student:+.2f}'
        times = [m['wall_time_s'] for m in runs if m['wall_time_s']]
        wall = _hms(np.mean(times)) if times else 'reused'
        rows.append(f'| {name} | {len(runs)} | {miou.mean():.2f}{spread} | '
                    f'{delta} | {np.mean([m["aAcc"] for m in runs]):.2f} | '
                    f'{wall} |')
    return '\n'.join(rows)


if __name__ == '__main__':
    main()
