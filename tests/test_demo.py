"""tools/demo.py: the ETA from measured run costs, and a shortened demo
through the real tools (every run, progress read from mmengine's
scalars.json, the table, the figures, and a rerun that reuses what exists).
"""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_demo():
    spec = importlib.util.spec_from_file_location(
        'demo_tool', osp.join(ROOT, 'tools', 'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEMO = load_demo()

# Demo runs on the 2-core VM: (name, wall seconds, seconds per iteration),
# none of them the runs demo.RELATIVE_ITER_COST was fitted to. Held out: an
# idle 300-iteration demo (`--seeds 0 1 2 --methods student KD DKD GDKD
# GDKD3`), the teacher and seed 1, from its wall_times.json and
# scalars.json. Loaded (load average 6-8, shared with other jobs), 60
# iterations: `tools/demo.py --seeds 0 --iters 60`, from wall_times.json
# and scalars.json.
HELD_OUT_300 = [('teacher', 187.4, 0.585), ('student', 47.5, 0.128),
                ('KD', 99.5, 0.289), ('DKD', 96.9, 0.285),
                ('GDKD', 99.9, 0.295), ('GDKD3', 94.6, 0.279)]
LOADED_60 = [('teacher', 516.5, 7.755), ('student', 216.5, 3.318),
             ('KD', 223.4, 3.071), ('DKD', 228.1, 3.172),
             ('GDKD', 319.3, 4.611)]
RECORDED = {'held out, idle, 300 iterations': (300, HELD_OUT_300),
            'loaded, 60 iterations': (60, LOADED_60)}


def estimates_after_each_run(iters, runs):
    """(estimated, actual) seconds left after each finished run but the
    last."""
    estimator = DEMO.RunCostEstimator(iters)
    pairs = []
    for done, (name, wall, sec_per_iter) in enumerate(runs[:-1], 1):
        estimator.record(DEMO.run_kind(name), wall, sec_per_iter)
        pairs.append((estimator.remaining(
            [DEMO.run_kind(r[0]) for r in runs[done:]]),
            sum(r[1] for r in runs[done:])))
    return pairs


@pytest.mark.parametrize('label', list(RECORDED))
def test_eta_after_the_first_run_is_within_30_percent(label):
    estimate, actual = estimates_after_each_run(*RECORDED[label])[0]
    assert abs(estimate - actual) <= 0.3 * actual, (estimate, actual)


def test_eta_on_an_idle_machine_stays_within_30_percent():
    # On the loaded run the later estimates missed by up to 43%: the load
    # changed from run to run, which nothing measured so far predicts.
    for estimate, actual in estimates_after_each_run(300, HELD_OUT_300):
        assert abs(estimate - actual) <= 0.3 * actual, (estimate, actual)


def test_a_running_runs_first_iterations_do_not_outweigh_finished_runs():
    estimator = DEMO.RunCostEstimator(300)
    estimator.record('teacher', 300 * 1.0, 1.0)
    # 6 student iterations as slow as the teacher's (a load spike).
    relative = DEMO.RELATIVE_ITER_COST
    scale = (300 * 1.0 / relative['teacher'] + 6 * 1.0) / 306
    assert estimator.sec_per_iter('distilled', ('student', 6, 1.0)) == \
        pytest.approx(scale * relative['distilled'])
    assert estimator.sec_per_iter('student', ('student', 6, 1.0)) == 1.0


def test_eta_during_the_first_run_and_on_a_slower_machine():
    estimator = DEMO.RunCostEstimator(300)
    assert estimator.remaining(['student']) != estimator.remaining(
        ['student'])  # nothing measured yet: unknown (nan)
    # 100 of 300 teacher iterations at 0.7 s after 20 s of start-up.
    left = estimator.remaining(['student', 'distilled'],
                               current=('teacher', 100, 0.7, 20.0))
    relative = DEMO.RELATIVE_ITER_COST
    per_student_iter = 0.7 / relative['teacher']
    expected = 200 * 0.7 + 2 * 20.0 + 300 * per_student_iter * (
        relative['student'] + relative['distilled'])
    assert left == pytest.approx(expected)
    # Measured kinds are used as measured, on any machine speed.
    slow = DEMO.RunCostEstimator(300)
    slow.record('teacher', 3 * (20 + 300 * 0.75), 3 * 0.75)
    slow.record('student', 3 * (20 + 300 * 0.17), 3 * 0.17)
    assert slow.remaining(['student']) == pytest.approx(3 * (20 + 51))


def test_every_demo_method_has_its_config():
    for config in [DEMO.TEACHER, *DEMO.RUNS.values()]:
        assert osp.isfile(osp.join(DEMO.CONFIGS, config)), config


def demo(tmp_path, *extra):
    proc = subprocess.run(
        [sys.executable, 'tools/demo.py', '--work-dir',
         str(tmp_path / 'demo'), '--data-root', str(tmp_path / 'data'),
         '--iters', '4', '--num-train', '16', '--num-val', '4',
         '--num-samples', '2', *extra],
        capture_output=True, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_shortened_demo_trains_evaluates_and_reuses(tmp_path):
    out = demo(tmp_path)
    for name in ('teacher', 'student', 'KD', 'DKD', 'GDKD'):
        assert f'training {name}' in out
        assert f'| {name} | 1 |' in out
    # Progress and metrics come from each run's scalars.json.
    assert out.count(' iter 4/4 (run eta 0:00) loss: ') == 5, out
    assert 'GDKD (seed 0) iter 2/4' in out and 'decode.loss_gdkd: ' in out
    assert out.count(' val: aAcc: ') == 5
    assert '| eta --:--]' in out  # before anything was measured
    assert 'eta 0:' in out
    work = tmp_path / 'demo'
    # What distillation buys: GDKD's student against the teacher.
    assert re.search(r'^\| student alone \| .* \| [\d.]+ \|$', out, re.M)
    assert re.search(r'^\| GDKD student \| .* \| [\d.]+ \|$', out, re.M)
    for name in ('summary.md', 'miou.png', 'per_class_iou.png',
                 'samples.png', 'student_vs_teacher.png'):
        assert (work / name).stat().st_size > 0, name
    summary = json.loads((work / 'summary.json').read_text())
    assert len(summary['classes']) == 19
    for runs in summary['results'].values():
        assert 0 <= runs[0]['mIoU'] <= 100 and len(runs[0]['IoU']) == 19
    assert (work / 'seed0' / 'gdkd' / 'iter_4.pth').is_file()

    # Rerun one method: the teacher and GDKD are reused, not retrained.
    again = demo(tmp_path, '--methods', 'GDKD')
    assert 'training' not in again
    assert again.count('| GDKD | 1 |') == 1 and '| KD |' not in again


def test_summary_compares_with_the_student_only_when_it_ran():
    """A demo run without the student (``--methods DIST GDKD-DIST``) leaves
    the 'vs student' column empty instead of printing '+nan'."""
    demo = load_demo()
    run = dict(mIoU=17.0, aAcc=75.0, wall_time_s=60.0)
    without = demo.summary_table({'teacher': [run], 'DIST': [run, run]})
    assert 'nan' not in without
    assert '| DIST | 2 | 17.00 ± 0.00 |  | 75.00 | 1:00 |' in without
    with_student = demo.summary_table(
        {'student': [dict(run, mIoU=16.0)], 'DIST': [run]})
    assert '| DIST | 1 | 17.00 | +1.00 |' in with_student
