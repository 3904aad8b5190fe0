"""tools/sweep.py: specs checked before training, the report's numbers,
resuming, and workers sharing one SQLite study.

Most tests train with tests/fixtures/fake_train.py (tools/train.py's command
line; mIoU = 10*k + w2 + beta + seed/10), so every number of the report is
known; one slow test trains the demo config for real.
"""
import importlib.util
import json
import multiprocessing
import os
import os.path as osp
import re
import signal
import sqlite3
import time

import optuna
import pytest

from gdkd_seg.apis import best_metric
from gdkd_seg.sweep import (SweepSpecError, collect_results, parse_grid,
                            parse_range, plan_sweep, run_sweep, write_report)
from gdkd_seg.sweep.claims import Claims
from gdkd_seg.sweep.space import apply_point, config_paths

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FAKE_TRAIN = osp.join(ROOT, 'tests', 'fixtures', 'fake_train.py')
DEMO = 'configs/demo/{}_deeplabv3-r18_deeplabv3-r18w16_1xb8-300it_' \
    'synthetic-cityscapes-128x256.py'
GDKD, DKD, DIST = (DEMO.format(m) for m in ('gdkd', 'dkd', 'dist'))
K = 'model.distill_losses.*.k'
W2 = 'model.distill_losses.*.w2'
BETA = 'model.distill_losses.*.beta'


def fake_runs(log):
    if not osp.isfile(log):
        return []
    with open(log) as f:
        return [json.loads(line) for line in f]


def table_rows(work_dir):
    with open(osp.join(work_dir, 'sweep.md')) as f:
        return [line for line in f if line.startswith('| ')][2:]


def test_specs_parse_and_name_what_is_wrong():
    param = parse_grid('a.b=1, 2.5,adaptive,"x",None')
    assert param.choices == (1, 2.5, 'adaptive', 'x', None)
    assert len(parse_grid('a=1,1.0,True').choices) == 3
    param = parse_range('w2=1:16:log')
    assert (param.low, param.high, param.log) == (1, 16, True)
    assert parse_range('k=1|3').choices == (1, 3)
    for spec, message in [('k=', 'the grid is empty'),
                          ('k=1,,2', 'an empty value'),
                          ('k=1,1', 'listed twice'),
                          ("k=adaptive,'adaptive'", 'listed twice'),
                          ('k=[1,', 'does not parse'),
                          ('k=[1,2]', 'must be numbers, strings'),
                          ('k', 'write KEY=VALUES')]:
        with pytest.raises(SweepSpecError, match=message):
            parse_grid(spec)
    for spec, message in [('w2=8:1', 'LOW must be below HIGH'),
                          ('w2=0:8:log', 'log range needs LOW > 0'),
                          ('w2=1:x', 'not a number'),
                          ('w2=1:8:ln', 'KEY=LOW:HIGH:log')]:
        with pytest.raises(SweepSpecError, match=message):
            parse_range(spec)


def test_bad_input_fails_before_anything_trains(tmp_path):

    def plan(*params, configs=(GDKD, DKD), **kwargs):
        return plan_sweep(
            list(configs),
            list(params), [0],
            str(tmp_path / 'run'),
            train_script=FAKE_TRAIN,
            **kwargs)

    with pytest.raises(
            SweepSpecError,
            match=r"unknown config key 'model\.distill_losses\."
            r"decode_head\.kk'.*decode_head has no 'kk' \(it "
            r'has: type, k, temperature'):
        plan(parse_grid('model.distill_losses.decode_head.kk=1,2'))
    with pytest.raises(
            SweepSpecError,
            match="'three' does not parse as a "
            'number.*decode_head.k is 3'):
        plan(parse_grid(f'{K}=1,three'))
    with pytest.raises(SweepSpecError, match='seeds must be distinct'):
        plan_sweep([GDKD], [], [0, 0], str(tmp_path), FAKE_TRAIN)
    with pytest.raises(SweepSpecError, match='needs --search tpe'):
        plan(parse_range(f'{W2}=1:8'))
    with pytest.raises(SweepSpecError, match='needs --trials'):
        plan(parse_range(f'{W2}=1:8'), search='tpe')
    with pytest.raises(FileNotFoundError, match='missing.py'):
        plan(configs=['configs/missing.py'])
    # A quoted word is a string on purpose; keys apply where they exist.
    sweep = plan(parse_grid(f"{K}=3,'adaptive'"), parse_grid(f'{BETA}=2'))
    assert [[p.key for p in t.params] for t in sweep.targets] == [[K], [BETA]]
    assert [t.label for t in sweep.targets] == ['gdkd', 'dkd']
    assert not (tmp_path / 'run').exists()

    # The command line reports the error and exits before creating DIR.
    tool = sweep_tool()
    with pytest.raises(SystemExit, match='sweep: unknown config key'):
        tool.main([
            GDKD, '--grid', 'model.nope=1', '--work-dir',
            str(tmp_path / 'cli')
        ])
    with pytest.raises(SystemExit, match='the grid is empty'):
        tool.main(
            [GDKD, '--grid', f'{K}=', '--work-dir',
             str(tmp_path / 'cli')])
    with pytest.raises(SystemExit, match='--report-only: no sweep in'):
        tool.main([GDKD, '--grid', f'{K}=1,3', '--report-only',
                   '--work-dir', str(tmp_path / 'cli')])
    assert not (tmp_path / 'cli').exists()


@pytest.mark.parametrize('spec,message', [
    (f'{W2}=2,-1', r'w2=-1: model\.distill_losses\.decode_head\.w2 is '
     r'refused by GDKDLoss: the leaf weight of group 1 must be >= 0'),
    (f'{W2}=True', 'refused by GDKDLoss: the leaf weight of group 1 must be '
     'a finite number, got True'),
    (f"{W2}='abc'", 'leaf weight of group 1 must be a finite number'),
    (f'{K}=0', r'k=0: .*refused by GDKDLoss: cuts \(k\) must be'),
    (f'{K}=None', 'refused by GDKDLoss: cuts'),
    ('model.distill_losses.*.temperature=1e9',
     r'temperature must be in \[0\.0001, 100\]'),
    ('model.distill_losses.*.loss_weight=-3', 'loss_weight must be >= 0'),
    ('optim_wrapper.optimizer.lr=-0.1',
     'lr=-0.1: optim_wrapper.optimizer.lr is refused by SGD: Invalid '
     'learning rate: -0.1'),
])
def test_values_the_losses_or_optimizer_refuse_fail_at_plan_time(
        spec, message, tmp_path):
    with pytest.raises(SweepSpecError, match=message):
        plan_sweep([GDKD], [parse_grid(spec)], [0], str(tmp_path / 'run'),
                   train_script=FAKE_TRAIN)
    assert not (tmp_path / 'run').exists()


def sweep_tool():
    spec = importlib.util.spec_from_file_location('sweep_tool',
                                                  'tools/sweep.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_non_finite_values_are_refused_when_parsed():
    with pytest.raises(SweepSpecError, match=r"'1e999' is inf; swept "
                       'numbers must be finite'):
        parse_grid(f'{K}=1,1e999')
    with pytest.raises(SweepSpecError, match='must be finite'):
        parse_range(f'{W2}=1:1e999')
    with pytest.raises(SweepSpecError, match='must be finite'):
        parse_range(f'{W2}=-1e999:1')


def test_a_bad_storage_or_work_dir_ends_in_one_line(tmp_path):
    tool = sweep_tool()
    corrupt = tmp_path / 'corrupt.db'
    corrupt.write_bytes(b'not a database' * 100)
    empty = tmp_path / 'empty.db'
    sqlite3.connect(empty).close()
    (tmp_path / 'afile').write_text('')
    cases = [
        (['--storage', 'sweep.db'], "--storage sweep.db: Could not parse"),
        (['--storage', f'sqlite:///{corrupt}'],
         'corrupt.db: file is not a database'),
        (['--storage', f'sqlite:///file:{empty}?mode=ro&uri=true'],
         'attempt to write a readonly database'),
        (['--storage', 'nosuchdb://host/db'],
         "--storage nosuchdb://host/db: Can't load plugin"),
        (['--work-dir', str(tmp_path / 'afile')], 'afile is a file'),
        (['--work-dir', str(tmp_path / 'afile' / 'sub')], 'afile is a file'),
    ]
    # A driver that is not installed, or a server that is not there.
    cases.append((['--storage', 'postgresql://u:s3cret@localhost:1/db'],
                  '--storage postgresql://u:***@localhost:1/db: '))
    for argv, message in cases:
        argv = [GDKD, '--grid', f'{K}=1', '--train-script', FAKE_TRAIN,
                '--work-dir', str(tmp_path / 'sweep'), *argv]
        with pytest.raises(SystemExit) as err:
            tool.main(argv)
        assert message in str(err.value.code), argv
        assert '\n' not in str(err.value.code)
        assert 's3cret' not in str(err.value.code)


def test_a_storage_password_is_masked_as_written_in_the_url():
    """make_url decodes 'p%40ss' to 'p@ss': both forms are masked."""
    from gdkd_seg.sweep.claims import SweepStorageError, storage_errors
    url = 'postgresql://bob:p%40ss@localhost:1/db'
    with pytest.raises(SweepStorageError) as err:
        with storage_errors(url):
            raise ValueError(f'cannot connect to {url} (password p@ss)')
    assert 'p%40ss' not in str(err.value) and 'p@ss' not in str(err.value)
    assert 'bob:***@localhost' in str(err.value)


def test_points_that_read_alike_never_share_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv('FAKE_TRAIN_LOG', str(tmp_path / 'runs.jsonl'))
    work = tmp_path / 'sweep'
    # An unfinished run of k=1 from a sweep that named folders by the
    # values alone: it resumes there (no other point reads 'k=1').
    (work / 'gdkd' / 'k=1' / 'seed0').mkdir(parents=True)
    # One that three points read alike: none of them may resume there.
    alike = work / 'gdkd' / 'k=1_data_root=data-city-scapes' / 'seed0'
    alike.mkdir(parents=True)
    roots = "'data/city scapes','data/city/scapes','data/city:scapes'"
    sweep = plan_sweep(
        [GDKD], [parse_grid(f'{K}=1,3'),
                 parse_grid(f'train_dataloader.dataset.data_root={roots}')],
        [0], str(work), train_script=FAKE_TRAIN)
    assert run_sweep(sweep, log=lambda line: None) == 6
    points = collect_results(sweep)['targets'][0]['points']
    dirs = [p['seeds']['0']['work_dir'] for p in points]
    assert len(set(dirs)) == 6 and str(alike) not in dirs
    for point, work_dir in zip(points, dirs):
        with open(osp.join(work_dir, 'sweep_config.py')) as f:
            assert repr(point['params']['train_dataloader.dataset.data_root']
                        ) in f.read()
    assert len(fake_runs(str(tmp_path / 'runs.jsonl'))) == 6

    legacy = plan_sweep([GDKD], [parse_grid(f'{K}=1,3')], [0],
                        str(work), train_script=FAKE_TRAIN,
                        study_name='legacy')
    run_sweep(legacy, log=lambda line: None)
    dirs = [p['seeds']['0']['work_dir']
            for p in collect_results(legacy)['targets'][0]['points']]
    assert dirs[0] == str(work / 'gdkd' / 'k=1' / 'seed0')
    assert re.fullmatch(r'.*/gdkd/k=3-[0-9a-f]{8}/seed0', dirs[1])


def test_a_run_stopped_by_a_non_finite_loss_is_a_failed_point(
        tmp_path, monkeypatch):
    monkeypatch.setenv('FAKE_TRAIN_LOG', str(tmp_path / 'runs.jsonl'))
    monkeypatch.setenv('FAKE_TRAIN_DIVERGE', '1')
    sweep = plan_sweep([GDKD], [parse_grid(f'{K}=1,3')], [0, 1],
                       str(tmp_path / 'sweep'), train_script=FAKE_TRAIN)
    lines = []
    assert run_sweep(sweep, log=lines.append) == 2  # one seed per point
    assert any('seed 0 stopped at a non-finite loss: iteration 3' in line
               for line in lines)
    trials = optuna.load_study(study_name=sweep.study_name_of(
        sweep.targets[0]), storage=sweep.storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 2
    for point in collect_results(sweep)['targets'][0]['points']:
        assert not point['mean'] == point['mean']  # NaN, never a score
        assert point['seeds']['0']['diverged'].startswith('iteration 3:')
    # Done: a second call trains nothing.
    assert run_sweep(sweep, log=lines.append) == 0


def test_a_seed_without_a_finite_validation_ends_its_point(
        tmp_path, monkeypatch):
    """Its mean is NaN whatever the other seeds give: they are not run."""
    monkeypatch.setenv('FAKE_TRAIN_LOG', str(tmp_path / 'runs.jsonl'))
    monkeypatch.setenv('FAKE_TRAIN_NAN', '1')
    sweep = plan_sweep([GDKD], [parse_grid(f'{K}=1,3')], [0, 1],
                       str(tmp_path / 'sweep'), train_script=FAKE_TRAIN)
    lines = []
    assert run_sweep(sweep, log=lines.append) == 2  # one seed per point
    assert any('seed 0 has no finite validation' in line for line in lines)
    for point in collect_results(sweep)['targets'][0]['points']:
        assert not point['mean'] == point['mean']  # NaN, never a score


def test_keys_reach_both_heads_and_a_teacher_given_as_a_config_path():
    from mmengine.config import Config
    cfg = Config.fromfile(GDKD)
    assert config_paths(cfg, K) == [
        ('model', 'distill_losses', 'decode_head', 'k'),
        ('model', 'distill_losses', 'auxiliary_head', 'k')
    ]
    assert isinstance(cfg.model.teacher, str)
    apply_point(cfg, {K: 5, 'model.teacher.backbone.depth': 34})
    assert cfg.model.distill_losses.auxiliary_head.k == 5
    assert cfg.model.distill_losses.auxiliary_head.loss_weight == 0.4
    assert cfg.model.teacher.backbone.depth == 34
    assert cfg.model.teacher.type == 'EncoderDecoder'


def test_claims_let_one_worker_through_and_take_over_dead_ones(tmp_path):
    url = f'sqlite:///{tmp_path}/claims.db'
    first, second = Claims(url), Claims(url)
    assert first.acquire('s', 'p', trial=0) is None
    held = second.acquire('s', 'p', trial=1)
    assert held is not None and held.owner == first.owner
    assert second.held_elsewhere('s', 'p')
    first.release('s', 'p')
    assert second.acquire('s', 'p', trial=1) is None
    # A holder on this host whose process is gone, or one elsewhere that
    # stopped beating, is dead.
    with second.engine.begin() as conn:
        conn.execute(second.table.update().values(
            owner=f'{second.host}:{2**22 + 7}:dead'))
    assert first.acquire('s', 'p', trial=2) is None
    with first.engine.begin() as conn:
        conn.execute(first.table.update().values(
            owner='elsewhere:1:x', heartbeat=time.time() - 601))
    assert second.acquire('s', 'p', trial=3) is None
    assert first.get('s', 'p').trial == 3


def test_grid_over_seeds_writes_the_report_and_a_rerun_trains_nothing(
        tmp_path, monkeypatch):
    log = str(tmp_path / 'runs.jsonl')
    monkeypatch.setenv('FAKE_TRAIN_LOG', log)
    work = str(tmp_path / 'sweep')
    sweep = plan_sweep([GDKD, DKD], [
        parse_grid(f'{K}=1,3'),
        parse_grid(f'{W2}=1,8'),
        parse_grid(f'{BETA}=2')
    ], [0, 1],
                       work,
                       train_script=FAKE_TRAIN)
    lines = []
    assert run_sweep(sweep, log=lines.append) == 10
    assert any('eta' in line for line in lines)
    paths = write_report(collect_results(sweep), work)
    assert all(osp.getsize(p) > 0 for p in paths)

    rows = table_rows(work)
    assert len(rows) == 5
    assert rows[0] == ('| gdkd | 1 | 1 |  | 11.00 | 11.10 | 11.05 ± 0.07 '
                       '| -27.00 ± 0.00 |\n')
    assert rows[3] == ('| gdkd | 3 | 8 |  | 38.00 | 38.10 | **38.05 ± 0.07**'
                       ' | +0.00 ± 0.00 |\n')
    assert rows[4] == ('| dkd |  |  | 2 | 2.00 | 2.10 | **2.05 ± 0.07** | '
                       '-36.00 ± 0.00 |\n')
    with open(paths[1]) as f:
        results = json.load(f)
    gdkd = results['targets'][0]
    assert gdkd['keys'] == {K: 'k', W2: 'w2'}
    assert [len(p['seeds']) for p in gdkd['points']] == [2, 2, 2, 2]
    point = gdkd['points'][1]
    assert point['params'] == {K: 1, W2: 8}
    assert [point['seeds'][s]['value'] for s in '01'] == [18.0, 18.1]
    assert re.search(r'/gdkd/k=1_w2=8-[0-9a-f]{8}/seed1$',
                     point['seeds']['1']['work_dir'])
    assert point['mean'] == pytest.approx(18.05)

    assert run_sweep(sweep, log=lines.append) == 0
    assert len(fake_runs(log)) == 10
    assert sorted((r['k'], r['w2'], r['seed']) for r in fake_runs(log)
                  if r['type'] == 'GDKDLoss') == [(k, w2, s) for k in (1, 3)
                                                  for w2 in (1, 8)
                                                  for s in (0, 1)]
    # Other settings on the same DIR would mix numbers: refused.
    other = plan_sweep([GDKD], [parse_grid(f'{K}=1,3')], [0, 1, 2],
                       work,
                       train_script=FAKE_TRAIN)
    with pytest.raises(ValueError, match='was started with other settings'):
        run_sweep(other)


def test_one_call_compares_gdkd_with_dist_seed_by_seed(tmp_path, monkeypatch):
    """docs/tuning.md's command: DIST first (the reference) at its own
    values, GDKD over w2, the same seeds; the fake mIoU is beta + seed/10
    for DIST (beta 1) and 30 + w2 + seed/10 for GDKD (k 3)."""
    monkeypatch.setenv('FAKE_TRAIN_LOG', str(tmp_path / 'runs.jsonl'))
    work = str(tmp_path / 'sweep')
    sweep = plan_sweep([DIST, GDKD], [parse_grid(f'{W2}=1,2')], [0, 1], work,
                       train_script=FAKE_TRAIN)
    assert [t.label for t in sweep.targets] == ['dist', 'gdkd']
    assert [[p.key for p in t.params] for t in sweep.targets] == [[], [W2]]
    assert run_sweep(sweep) == 6
    write_report(collect_results(sweep), work)
    assert table_rows(work) == [
        '| dist |  | 1.00 | 1.10 | **1.05 ± 0.07** | +0.00 ± 0.00 |\n',
        '| gdkd | 1 | 31.00 | 31.10 | 31.05 ± 0.07 | +30.00 ± 0.00 |\n',
        '| gdkd | 2 | 32.00 | 32.10 | **32.05 ± 0.07** | +31.00 ± 0.00 |\n']


def test_tpe_search_trains_the_requested_number_of_points(
        tmp_path, monkeypatch):
    monkeypatch.setenv('FAKE_TRAIN_LOG', str(tmp_path / 'runs.jsonl'))
    work = str(tmp_path / 'tpe')
    sweep = plan_sweep([GDKD],
                       [parse_range(f'{W2}=1:8'),
                        parse_range(f'{K}=1|3')], [0],
                       work,
                       train_script=FAKE_TRAIN,
                       search='tpe',
                       trials=3)
    run_sweep(sweep, log=lambda line: None)
    results = collect_results(sweep)
    points = results['targets'][0]['points']
    assert len(points) == 3
    for point in points:
        k, w2 = point['params'][K], point['params'][W2]
        assert k in (1, 3) and 1 <= w2 <= 8
        assert point['mean'] == pytest.approx(10 * k + w2)


def test_tpe_report_before_any_point_and_a_diverged_point_proposed_again(
        tmp_path, monkeypatch):
    monkeypatch.setenv('FAKE_TRAIN_LOG', str(tmp_path / 'runs.jsonl'))
    work = str(tmp_path / 'tpe')
    sweep = plan_sweep([GDKD], [parse_range(f'{K}=1|3')], [0],
                       work,
                       train_script=FAKE_TRAIN,
                       search='tpe',
                       trials=3)
    # --report-only on a study with no finished point: a report, no crash.
    os.makedirs(work)
    paths = write_report(collect_results(sweep), work)
    assert all(osp.isfile(p) for p in paths)
    assert table_rows(work) == []
    # Every run diverges; two values of k for three trials, so TPE proposes
    # a diverged point again, which must be closed as failed, not crash.
    monkeypatch.setenv('FAKE_TRAIN_NAN', '1')
    run_sweep(sweep, log=lambda line: None)
    assert sorted(r['k'] for r in fake_runs(str(tmp_path / 'runs.jsonl'))) \
        == [1, 3]
    trials = optuna.load_study(study_name=sweep.study_name_of(
        sweep.targets[0]), storage=sweep.storage).trials
    reused = [t for t in trials if 'reused_from' in t.user_attrs]
    assert reused and all(t.state == optuna.trial.TrialState.FAIL
                          for t in reused)
    write_report(collect_results(sweep), work)
    assert len(table_rows(work)) == 2


def test_difference_to_the_reference_is_taken_seed_by_seed():
    from gdkd_seg.sweep.report import markdown_table

    def point(k, values):
        return dict(
            params={K: k},
            done=True,
            seeds={
                str(s): dict(value=v)
                for s, v in enumerate(values)
            },
            mean=sum(values) / 2,
            std=abs(values[0] - values[1]) / 2**0.5)

    results = dict(
        metric='mIoU',
        mode='max',
        seeds=[0, 1],
        targets=[
            dict(
                label='gdkd',
                keys={K: 'k'},
                points=[point(1, [10.0, 14.0]),
                        point(3, [11.0, 14.0])])
        ])
    rows = markdown_table(results).splitlines()[2:4]
    # Means differ by 0.5; per seed by -1 and 0: mean -0.5, std 0.71.
    assert rows[0].endswith('| 12.00 ± 2.83 | -0.50 ± 0.71 |')
    assert rows[1].endswith('| **12.50 ± 2.12** | +0.00 ± 0.00 |')


def start_worker(sweep, env):
    """A worker process sharing nothing with the test but the database
    (forked: no second import of torch and mmseg)."""

    def work():
        os.setpgrp()  # killpg then stops it with its training run
        os.environ.update(env)
        run_sweep(
            sweep,
            log=lambda line: None,
            after_point=lambda: write_report(
                collect_results(sweep), sweep.work_dir))

    process = multiprocessing.get_context('fork').Process(target=work)
    process.start()
    return process


def test_a_killed_sweep_resumes_without_retraining(tmp_path):
    log = str(tmp_path / 'runs.jsonl')
    sweep = plan_sweep(
        [GDKD],
        [parse_grid(f'{K}=2'), parse_grid(f'{W2}=1,8')], [0, 1],
        str(tmp_path / 'sweep'),
        train_script=FAKE_TRAIN)
    env = dict(FAKE_TRAIN_LOG=log, FAKE_TRAIN_SECONDS='1')
    worker = start_worker(sweep, env)
    deadline = time.time() + 120
    while len(fake_runs(log)) < 4 and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(worker.pid, signal.SIGKILL)  # mid-way through the last run
    worker.join()
    assert len(fake_runs(log)) == 4
    assert len(table_rows(sweep.work_dir)) == 2  # written after point one

    again = start_worker(sweep, env)
    again.join()
    assert again.exitcode == 0
    runs = [(r['w2'], r['seed']) for r in fake_runs(log)]
    assert sorted(runs[:4]) == [(1, 0), (1, 1), (8, 0), (8, 1)]
    assert runs[4:] == runs[3:4]  # only the run that was cut off
    assert [row.split(' | ')[-2] for row in table_rows(sweep.work_dir)
            ] == ['21.05 ± 0.07', '**28.05 ± 0.07**']
    study = optuna.load_study(study_name='sweep/gdkd', storage=sweep.storage)
    states = [t.state.name for t in study.trials]
    assert states.count('COMPLETE') == 2 and 'RUNNING' not in states


def test_two_workers_share_one_study_and_train_each_point_once(tmp_path):
    log = str(tmp_path / 'runs.jsonl')
    sweep = plan_sweep([GDKD],
                       [parse_grid(f'{K}=1,3'),
                        parse_grid(f'{W2}=1,8')], [0],
                       str(tmp_path / 'sweep'),
                       train_script=FAKE_TRAIN)
    env = dict(FAKE_TRAIN_LOG=log, FAKE_TRAIN_SECONDS='1.5')
    workers = [start_worker(sweep, env) for _ in range(2)]
    for worker in workers:
        worker.join()
    assert [w.exitcode for w in workers] == [0, 0]
    runs = fake_runs(log)
    assert sorted((r['k'], r['w2'], r['seed']) for r in runs) == [(1, 1, 0),
                                                                  (1, 8, 0),
                                                                  (3, 1, 0),
                                                                  (3, 8, 0)]
    assert {r['pid'] for r in runs} == {w.pid for w in workers}
    assert len(table_rows(sweep.work_dir)) == 4


@pytest.mark.slow
def test_demo_config_trains_for_real_and_scores_its_logged_miou(tmp_path):
    from gdkd_seg.datasets.synthetic_cityscapes import \
        generate_synthetic_cityscapes
    data = str(tmp_path / 'data')
    generate_synthetic_cityscapes(data, num_train=4, num_val=2, seed=0)
    work = str(tmp_path / 'sweep')
    loader = dict(num_workers=0, persistent_workers=False,
                  dataset=dict(data_root=data))
    sweep = plan_sweep(
        [GDKD], [parse_grid(f'{K}=2')], [3], work,
        train_script=osp.join(ROOT, 'tools', 'train.py'),
        cfg_options={
            'model.teacher_ckpt': None,
            'train_cfg.max_iters': 1,
            'train_cfg.val_interval': 1,
            'param_scheduler.0.end': 1,
            'default_hooks.checkpoint.interval': 1,
            'train_dataloader': dict(loader, batch_size=2),
            'val_dataloader': loader
        },
        env=dict(OMP_NUM_THREADS='1'))
    assert run_sweep(sweep, log=lambda line: None) == 1
    point = collect_results(sweep)['targets'][0]['points'][0]
    seed = point['seeds']['3']
    # LABEL/SLUG-HASH/seedN: the point's readable name and 8 hex digits.
    assert re.search(r'/gdkd/k=2-[0-9a-f]{8}/seed3$', seed['work_dir'])
    assert (seed['value'], seed['step']) == best_metric(seed['work_dir'])
    assert 0 <= seed['value'] <= 100
    from mmengine.config import Config
    ran = Config.fromfile(osp.join(seed['work_dir'], 'sweep_config.py'))
    assert ran.randomness.seed == 3
    assert ran.model.distill_losses.auxiliary_head.k == 2
