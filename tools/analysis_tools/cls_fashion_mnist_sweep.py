"""Fashion-MNIST: train the teacher once, then the student alone and with
KD, DKD, GDKD, GDKD3, DIST and LSKD over seeds (tools/sweep.py); report
test top-1.

    bash tools/dataset_converters/get_fashion_mnist.sh  # once
    python tools/analysis_tools/cls_fashion_mnist_sweep.py \\
        [--seeds 0 1 2] [--threads 1] [--doc docs/classification.md]

The same as

    python tools/train.py configs/cls/fashion_mnist/teacher_*.py \\
        --work-dir work_dirs/fashion_mnist/teacher
    python tools/sweep.py \\
        configs/cls/fashion_mnist/{student,kd,dkd,gdkd,gdkd3,dist,lskd}_* \\
        --seeds 0 1 2 --work-dir work_dirs/fashion_mnist/sweep

(the distillation configs read the teacher from
work_dirs/fashion_mnist/teacher/epoch_10.pth), plus, with ``--doc``, a
table of the sweep's results (work_dirs/fashion_mnist/sweep/sweep.json)
written between the markers of that file. Finished runs are kept in the
sweep's study: a second call trains only the missing ones. The configs
validate once, on the 10,000 test images after the last epoch, so each
run's best validation top-1 is its final test top-1.
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import re
import statistics
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = 'configs/cls/fashion_mnist'
SUFFIX = '1xb64-5e_fashion-mnist-5k.py'
TEACHER = 'teacher_resnet8w8_1xb64-10e_fashion-mnist-5k.py'
STUDENTS = {
    'student alone': f'student_resnet8w4_{SUFFIX}',
    'KD': f'kd_resnet8w8_resnet8w4_{SUFFIX}',
    'DKD': f'dkd_resnet8w8_resnet8w4_{SUFFIX}',
    'GDKD': f'gdkd_resnet8w8_resnet8w4_{SUFFIX}',
    'GDKD3': f'gdkd3_resnet8w8_resnet8w4_{SUFFIX}',
    'DIST': f'dist_resnet8w8_resnet8w4_{SUFFIX}',
    'LSKD': f'lskd_resnet8w8_resnet8w4_{SUFFIX}',
}
WORK_DIR = 'work_dirs/fashion_mnist'
TEACHER_CKPT = f'{WORK_DIR}/teacher/epoch_10.pth'
TABLE_START = '<!-- fashion-mnist-table:start -->'
TABLE_END = '<!-- fashion-mnist-table:end -->'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch CPU threads per run. Default 1: on a shared 2-core '
        'machine two threads wait on each other and ran up to 10x slower')
    parser.add_argument(
        '--doc',
        help='markdown file whose table (between the markers) to '
        'replace, e.g. docs/classification.md')
    return parser.parse_args()


def results_table(results: dict, teacher_top1: float) -> str:
    """The markdown table of a sweep's ``sweep.json`` results: one row per
    run, mean ± sample std over seeds, each seed's top-1 and the mean wall
    time of a run."""
    lines = [
        '| model | top-1 (%) mean ± std | per seed | s / run |',
        '| --- | --- | --- | --- |',
        f'| teacher ResNet-8w8 (seed 0) | {teacher_top1:.2f} | '
        f'{teacher_top1:.2f} | |',
    ]
    total = 0.0
    for name, target in zip(STUDENTS, results['targets']):
        seeds = target['points'][0]['seeds'] if target['points'] else {}
        values = [seeds[s]['value'] for s in sorted(seeds, key=int)]
        seconds = [seeds[s]['seconds'] for s in seeds]
        total += sum(seconds)
        if not values:
            lines.append(f'| ResNet-8w4, {name} | not run | | |')
            continue
        spread = f' ± {statistics.stdev(values):.2f}' \
            if len(values) > 1 else ''
        lines.append(
            f'| ResNet-8w4, {name} | {statistics.mean(values):.2f}{spread} '
            f'| {", ".join(f"{v:.2f}" for v in values)} '
            f'| {statistics.mean(seconds):.0f} |')
    seeds = ', '.join(map(str, results['seeds']))
    software = results['software']
    lines += [
        '', f'Seeds {seeds}; std is the sample standard deviation over '
        f'seeds. Python {software["python"]}, torch {software["torch"]} on '
        f'{software["machine"]}; the student runs took {total / 60:.1f} min '
        'of wall time in all.'
    ]
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
    os.chdir(ROOT)
    if not osp.isfile('data/fashion_mnist/train-images-idx3-ubyte'):
        raise SystemExit('Fashion-MNIST is not in data/fashion_mnist: run '
                         '`bash tools/dataset_converters/get_fashion_mnist.sh`'
                         ' first.')
    os.environ['OMP_NUM_THREADS'] = str(args.threads)
    if not osp.isfile(TEACHER_CKPT):
        subprocess.run([
            sys.executable, 'tools/train.py',
            osp.join(CONFIG_DIR, TEACHER), '--work-dir', f'{WORK_DIR}/teacher'
        ], check=True)
    spec = importlib.util.spec_from_file_location('sweep', 'tools/sweep.py')
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    work_dir = f'{WORK_DIR}/sweep'
    sweep.main([osp.join(CONFIG_DIR, c) for c in STUDENTS.values()] +
               ['--seeds', *map(str, args.seeds), '--work-dir', work_dir])
    from gdkd_seg.apis import best_metric
    teacher = best_metric(f'{WORK_DIR}/teacher', 'accuracy/top1')
    with open(osp.join(work_dir, 'sweep.json')) as f:
        table = results_table(json.load(f), teacher[0])
    if args.doc:
        replace_table(args.doc, table)
    print(table)


if __name__ == '__main__':
    main()
