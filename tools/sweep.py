"""Sweep configs over a grid (or a TPE search) and several seeds, on Optuna.

    python tools/sweep.py CONFIG [CONFIG ...] --work-dir DIR
        [--grid KEY=V1,V2,... ...] [--seeds 0 1 2]
        [--search tpe --trials N --range KEY=LOW:HIGH[:log] ...]
        [--storage URL] [--study-name NAME] [--metric KEY] [--mode max]
        [--gpus N] [--launcher {none,slurm}] [--cfg-options k=v ...]
        [--train-script PATH] [--report-only]

Each point of the grid is trained once per seed through tools/train.py
(mmengine's Runner) and scored by the mean over seeds of each run's best
validation metric. A key applies to every CONFIG that has it, so one call
compares methods under the same seeds and schedule, e.g. GDKD over k and w2
beside DKD over beta:

    python tools/sweep.py configs/demo/gdkd_*.py configs/demo/dkd_*.py \\
        --grid 'model.distill_losses.*.k=1,2,3,5' \\
        --grid 'model.distill_losses.*.w2=1,2,4,8' \\
        --grid 'model.distill_losses.*.beta=1,2,8' \\
        --seeds 0 1 --work-dir work_dirs/sweep

(``*`` sets the key in every distilled head.) The study is kept in
DIR/sweep.db: a second call resumes it and trains only what is missing.
Workers on several machines share one study through ``--storage`` (any
database URL Optuna supports); under slurm each task of
``tools/slurm_launch.sh sweep.py ...`` is one worker on its own GPU. Writes
DIR/sweep.md, DIR/sweep.json and DIR/sweep.png after every point; see
docs/tuning.md.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('configs', nargs='+', metavar='CONFIG')
    parser.add_argument('--work-dir', required=True, help='the sweep dir')
    parser.add_argument(
        '--grid',
        action='append',
        default=[],
        metavar='KEY=V1,V2,...',
        help='grid values of a config key (repeat for more keys)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument(
        '--search',
        choices=['grid', 'tpe'],
        default='grid',
        help="Optuna's GridSampler (default) or TPESampler")
    parser.add_argument('--trials', type=int, help='TPE: points to train')
    parser.add_argument(
        '--range',
        action='append',
        default=[],
        dest='ranges',
        metavar='KEY=LOW:HIGH[:log]|KEY=C1|C2',
        help='TPE: a number range or choices of a config key')
    parser.add_argument(
        '--storage',
        help='Optuna storage URL shared by workers '
        '(default: sqlite:///DIR/sweep.db)')
    parser.add_argument(
        '--study-name',
        help='prefix of the studies (default: the name of '
        'DIR); one study per CONFIG')
    parser.add_argument(
        '--metric',
        help="validation key to score (default: the config's "
        "save_best, else mIoU / accuracy/top1 by evaluator)")
    parser.add_argument('--mode', choices=['max', 'min'], default='max')
    parser.add_argument(
        '--gpus',
        type=int,
        default=1,
        help='GPUs per training run (torchrun) when above 1')
    parser.add_argument(
        '--launcher',
        choices=['none', 'slurm'],
        default='none',
        help='slurm: this process is one slurm task, a worker on the '
        'GPU(s) of its local rank')
    parser.add_argument(
        '--train-script',
        default=osp.join(ROOT, 'tools', 'train.py'),
        help='what trains one run, called as SCRIPT CONFIG --work-dir DIR '
        '--resume (default: tools/train.py)')
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='write the report of the study as it is; train nothing')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of every config, key=value')
    return parser.parse_args(argv)


def slurm_devices(gpus: int) -> dict:
    """The CUDA devices of this slurm task: its local rank's share of what
    the node gave the task (all of them when slurm already bound one)."""
    local = int(os.environ.get('SLURM_LOCALID', 0))
    devices = os.environ.get('CUDA_VISIBLE_DEVICES', '')
    devices = [d for d in devices.split(',') if d]
    if len(devices) <= gpus:
        return {}
    share = devices[local * gpus:(local + 1) * gpus]
    if len(share) < gpus:
        raise SystemExit(f'slurm task {local} needs {gpus} GPU(s) but the '
                         f'node lists only {devices}')
    return dict(CUDA_VISIBLE_DEVICES=','.join(share))


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, ROOT)
    import gdkd_seg  # noqa: F401  (compat layer before configs load)
    from gdkd_seg.sweep import (SweepSpecError, SweepStorageError,
                                collect_results, parse_grid, parse_range,
                                plan_sweep, run_sweep, write_report)
    try:
        params = [parse_grid(s) for s in args.grid]
        params += [parse_range(s) for s in args.ranges]
        sweep = plan_sweep(
            args.configs,
            params,
            args.seeds,
            args.work_dir,
            train_script=args.train_script,
            storage=args.storage,
            study_name=args.study_name,
            search=args.search,
            trials=args.trials,
            metric=args.metric,
            mode=args.mode,
            gpus=args.gpus,
            env=slurm_devices(args.gpus) if args.launcher == 'slurm' else {},
            cfg_options=args.cfg_options)
    except (SweepSpecError, KeyError, FileNotFoundError) as err:
        raise SystemExit(f'sweep: {err.args[0]}')
    if args.report_only and args.storage is None and not osp.isfile(
            osp.join(args.work_dir, 'sweep.db')):
        raise SystemExit(f'sweep: --report-only: no sweep in {args.work_dir} '
                         '(its sweep.db does not exist; give --storage for '
                         'a study kept elsewhere)')
    for target in sweep.targets:
        keys = ', '.join(p.key for p in target.params) or 'its own values'
        print(
            f'{target.label}: {target.config} over {keys}; '
            f'{target.metric}, seeds {sweep.seeds}',
            flush=True)

    def report():
        for path in write_report(collect_results(sweep), sweep.work_dir):
            print(f'wrote {path}', flush=True)

    try:
        if not args.report_only:
            trained = run_sweep(
                sweep,
                log=lambda line: print(line, flush=True),
                after_point=report)
            print(f'trained {trained} run(s) in this call', flush=True)
        report()
    except SweepStorageError as err:
        raise SystemExit(f'sweep: {err}')


if __name__ == '__main__':
    main()
