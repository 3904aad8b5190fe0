"""The whole product on an embedded default: distil a student from nothing.

    python tools/demo.py [--seeds 0 1 2] [--restart] [--iters N]

1. writes the synthetic Cityscapes-format data set if it is missing
   (tools/dataset_converters/generate_synthetic_cityscapes.py; same layout,
   dataset class, pipelines and metric as real Cityscapes);
2. trains the demo teacher, then the student alone, with KD, with DKD and
   with GDKD, from the same seed and schedule (configs/demo/, which inherit
   the Cityscapes configs), each through tools/train.py;
3. evaluates every run on the validation split and prints one table (mIoU,
   per-class IoU in summary.json, wall time), and writes figures: mIoU bars,
   per-class IoU, and sample predictions beside the ground truth;
4. prints what distillation buys: the distilled student (GDKD, or the
   first distillation method run) against the teacher and the student alone
   in parameters, FLOPs, CPU latency in PyTorch and onnxruntime, peak memory
   and mIoU (tools/analysis_tools/student_vs_teacher.py; needs onnxruntime).

Every run keeps its work dir under --work-dir; a rerun reuses finished runs
(and the data) unless --restart is given.
"""
import argparse
import importlib.util
import itertools
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

import numpy as np

from gdkd_seg.apis import read_scalars

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
    # Opt-in (--methods ... GDKD3 GDKD-adaptive LSKD DIST GDKD-DIST): the
    # three-group split top-1 / top-2..k / rest, per-pixel k, KD on z-scored
    # logits, DIST, and GDKD plus DIST's intra-class relation.
    'GDKD3': 'gdkd3_deeplabv3-r18_deeplabv3-r18w16_1xb8-300it_synthetic-'
    'cityscapes-128x256.py',
    'GDKD-adaptive': 'gdkd-adaptive_deeplabv3-r18_deeplabv3-r18w16_1xb8-'
    '300it_synthetic-cityscapes-128x256.py',
    'LSKD': 'lskd_deeplabv3-r18_deeplabv3-r18w16_1xb8-300it_synthetic-'
    'cityscapes-128x256.py',
    'DIST': 'dist_deeplabv3-r18_deeplabv3-r18w16_1xb8-300it_synthetic-'
    'cityscapes-128x256.py',
    'GDKD-DIST': 'gdkd-dist_deeplabv3-r18_deeplabv3-r18w16_1xb8-300it_'
    'synthetic-cityscapes-128x256.py',
}
DEFAULT_METHODS = ['student', 'KD', 'DKD', 'GDKD']
POLL_SECONDS = 2  # how often the run's scalars.json is read


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


#: Seconds per training iteration of each kind of run relative to the
#: student's, for the kinds not measured yet: teacher (DeepLabV3-R18) steps,
#: student (R18 at width 16) steps, and distilled student steps (a student
#: step plus a teacher forward). From the demo's 300-iteration runs on the
#: idle 2-core VM (wall times 3:54, 1:01 and about 2:00, less ~15 s of
#: start-up and validation each); the ETA scales them by the runs measured
#: so far. Under heavy CPU contention the ratios shrink (teacher ~1.8x).
RELATIVE_ITER_COST = {'teacher': 4.5, 'student': 1.0, 'distilled': 2.2}


def run_kind(name: str) -> str:
    """'teacher', 'student' or 'distilled' (every distillation method)."""
    return name if name in ('teacher', 'student') else 'distilled'


class RunCostEstimator:
    """Remaining wall time of a sequence of training runs.

    A run costs a fixed overhead (start-up, model building, validation,
    checkpoints) plus ``iters`` times its seconds per iteration, which
    depend on the kind of run. Both are measured from the runs done so far:
    the seconds per iteration from mmengine's logged ``time``, the overhead
    as wall time minus iterations. A kind not measured yet gets the
    measured kinds' cost scaled by :data:`RELATIVE_ITER_COST`, each measured
    kind weighted by the iterations it was measured over (so a running run's
    first few iterations do not outweigh finished runs).
    """

    def __init__(self, iters: int, relative_cost=RELATIVE_ITER_COST) -> None:
        self.iters, self.relative = iters, dict(relative_cost)
        self.iter_cost = {}  # kind -> [seconds per iteration of each run]
        self.overheads = []  # seconds per run outside its iterations

    def record(self, kind: str, wall: float, sec_per_iter: float) -> None:
        """A finished run: its wall time and mean seconds per iteration."""
        self.iter_cost.setdefault(kind, []).append(sec_per_iter)
        self.overheads.append(max(0.0, wall - sec_per_iter * self.iters))

    def sec_per_iter(self, kind: str, current=None) -> float:
        """Seconds per iteration of ``kind``.

        Args:
            kind (str): 'teacher', 'student' or 'distilled'.
            current (tuple | None): ``(kind, iters_done, sec_per_iter)`` of
                the running run, a measurement of its kind until a run of
                that kind has finished.
        """
        measured = {  # kind -> (seconds per iteration, iterations seen)
            k: (float(np.mean(v)), self.iters * len(v))
            for k, v in self.iter_cost.items()
        }
        if current is not None and current[1] > 0:
            measured.setdefault(current[0], (current[2], current[1]))
        if kind in measured:
            return measured[kind][0]
        if not measured:
            return float('nan')
        scales = [spi / self.relative[k] for k, (spi, _) in measured.items()]
        weights = [n for _, n in measured.values()]
        return float(np.average(scales, weights=weights) *
                     self.relative[kind])

    def remaining(self, future_kinds, current=None) -> float:
        """Seconds left: the rest of the current run and the future runs.

        Args:
            future_kinds (list[str]): kinds of the runs not started yet.
            current (tuple | None): ``(kind, iters_done, sec_per_iter,
                startup)`` of the running run, ``startup`` being the seconds
                from its launch to its first iteration (the overhead
                estimate until a run has finished).
        """
        if self.overheads:
            overhead = float(np.mean(self.overheads))
        else:
            overhead = current[3] if current is not None else float('nan')
        left = 0.0
        if current is not None:
            left += (self.iters - current[1]) * current[2]
            current = current[:3]
        for kind in future_kinds:
            left += overhead + self.iters * self.sec_per_iter(kind, current)
        return left


class Progress:
    """One status line per logged iteration: overall and run ETA."""

    def __init__(self, estimator: RunCostEstimator, kinds) -> None:
        self.estimator, self.start = estimator, time.time()
        self.future = list(kinds)  # kinds of the runs not started yet

    def line(self, current=None) -> str:
        elapsed = time.time() - self.start
        eta = self.estimator.remaining(self.future, current)
        done = f'{100 * elapsed / (elapsed + eta):5.1f}%' if eta == eta \
            else '  --%'
        return f'[demo {done} | elapsed {_hms(elapsed)} | eta {_hms(eta)}]'


def _hms(seconds: float) -> str:
    if seconds != seconds:
        return '--:--'
    seconds = int(seconds)
    return f'{seconds // 60:d}:{seconds % 60:02d}'


def final_checkpoint(work_dir: str, iters: int) -> str:
    return osp.join(work_dir, f'iter_{iters}.pth')


def mean_iter_time(records) -> float:
    """Mean seconds per iteration over mmengine's train records."""
    return float(np.mean([r['time'] for r in records])) if records else \
        float('nan')


def train(name: str, config: str, work_dir: str, options: list, iters: int,
          progress: Progress) -> float:
    """Run tools/train.py, reporting progress from the run's scalars.json
    (mmengine's logged losses, seconds per iteration and metrics). Returns
    the wall time in seconds."""
    log_file = osp.join(work_dir, 'demo_train.log')
    shutil.rmtree(work_dir, ignore_errors=True)  # an unfinished earlier try
    os.makedirs(work_dir)
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir,
        '--cfg-options', *options
    ]
    print(f'{progress.line()} training {name}: {" ".join(cmd[1:3])}',
          flush=True)
    kind = progress.future.pop(0)  # from now on, the running run
    start = time.time()
    startup, shown = None, 0
    with open(log_file, 'w') as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
                     os.environ.get('PYTHONPATH', '')))
        while True:
            try:  # returns as soon as the run ends
                proc.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            scalars = read_scalars(work_dir)
            for record in scalars.train[shown:]:
                spi = mean_iter_time(scalars.train[:shown + 1])
                if startup is None:
                    startup = time.time() - start - record['iter'] * spi
                shown += 1
                current = (kind, record['iter'], spi, startup)
                run_eta = (iters - record['iter']) * spi
                losses = ' '.join(f'{k}: {v:.4f}' for k, v in record.items()
                                  if 'loss' in k)
                print(f'{progress.line(current)} {name} iter '
                      f'{record["iter"]}/{iters} (run eta {_hms(run_eta)}) '
                      f'{losses}', flush=True)
            if proc.returncode is not None:
                break
    if proc.returncode != 0:
        raise RuntimeError(f'training {name} failed; see {log_file}')
    wall = time.time() - start
    progress.estimator.record(kind, wall, mean_iter_time(scalars.train))
    for record in scalars.val:
        metrics = ' '.join(f'{k}: {v:.2f}' for k, v in record.items()
                           if k not in ('step', 'time', 'data_time'))
        print(f'{progress.line()} {name} val: {metrics}', flush=True)
    return wall


def main():
    args = parse_args()
    os.chdir(ROOT)
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
            f'train_cfg.val_interval={iters}',
            f'param_scheduler.0.end={iters}',
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
    times_file = osp.join(args.work_dir, 'wall_times.json')
    wall = json.load(open(times_file)) if osp.isfile(times_file) else {}
    estimator = RunCostEstimator(iters)
    todo_dirs = {r[3] for r in todo}
    for name, _, _, work_dir in runs:  # finished earlier: what they cost
        if work_dir in todo_dirs or work_dir not in wall:
            continue  # to be (re)trained: its old logs are not read
        sec_per_iter = mean_iter_time(read_scalars(work_dir).train)
        if np.isfinite(sec_per_iter):
            estimator.record(run_kind(name), wall[work_dir], sec_per_iter)
    progress = Progress(estimator, [run_kind(r[0]) for r in todo])
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
            pairs = ((inputs, out) for data, outputs in iterate_logits(
                model, loader, args.num_samples)
                     for inputs, out in zip(data['inputs'], outputs))
            for inputs, out in itertools.islice(pairs, args.num_samples):
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
    distilled = [n for n in results if run_kind(n) == 'distilled']
    if distilled:
        compare_with_teacher(
            args, runs, iters, 'GDKD' if 'GDKD' in distilled else
            distilled[0])


def compare_with_teacher(args, runs, iters, method, threads=1):
    """The first seed's ``method`` student against the teacher and the
    student alone: print the table, write the figure."""
    if importlib.util.find_spec('onnxruntime') is None:
        print("no student-vs-teacher table: onnxruntime is not installed "
              "(pip install -e '.[deploy]')")
        return
    from gdkd_seg.analysis import (cost_table, measurement_caption,
                                   plot_student_vs_teacher,
                                   student_vs_teacher)
    first = {name: (config, work_dir) for name, seed, config, work_dir in runs
             if seed in (None, args.seeds[0])}
    config, work_dir = first[method]
    work_dirs = dict(teacher=first['teacher'][1], distilled=work_dir)
    if 'student' in first:
        work_dirs['student'] = first['student'][1]
    shape = (128, 256)  # the demo's images
    rows = student_vs_teacher(
        config, final_checkpoint(work_dirs['teacher'], iters),
        final_checkpoint(work_dir, iters), shape, threads,
        work_dirs=work_dirs, student_name=f'{method} student')
    caption = measurement_caption(shape, threads, 20)
    print(f'\n{cost_table(rows)}\n\n{caption}')
    figure = osp.join(args.work_dir, 'student_vs_teacher.png')
    plot_student_vs_teacher(rows, figure, caption)
    print(f'wrote {figure}')


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
        delta = '' if name in ('teacher', 'student') or np.isnan(student) \
            else f'{miou.mean() - student:+.2f}'
        times = [m['wall_time_s'] for m in runs if m['wall_time_s']]
        wall = _hms(np.mean(times)) if times else 'reused'
        rows.append(f'| {name} | {len(runs)} | {miou.mean():.2f}{spread} | '
                    f'{delta} | {np.mean([m["aAcc"] for m in runs]):.2f} | '
                    f'{wall} |')
    return '\n'.join(rows)


if __name__ == '__main__':
    main()
