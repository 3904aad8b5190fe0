"""Run a sweep: one Optuna study per config, a trial per point, a training
run per seed.

Each seed is trained by ``tools/train.py`` in its own process, on a config
file written for it (the config with the point's values and the seed set):
what ran is on disk beside its logs, memory a run leaves
behind (CUDA caches, dataloader workers, mmengine's global registries and
message hubs) goes away with its process, and the run can be launched like
any other (``torchrun`` for several GPUs per trial). The value of a seed is
the best validation metric mmengine logged (``read_scalars``), never a number
scraped from the console.

The study lives in an SQL database (SQLite in the work dir by default), so a
sweep that is stopped resumes where it stopped: finished points are never
trained again, finished seeds of an unfinished point neither, and a seed cut
off mid-run resumes from its last checkpoint. Several workers may share one
database (``--storage``); ``claims.Claims`` makes sure that no point is
trained twice.
"""
import copy
import functools
import hashlib
import json
import math
import os
import os.path as osp
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.config import Config

from ..apis.scalars import best_metric
from ..engine import NonFiniteLossError
from .claims import Claims, sqlite_engine_kwargs, storage_errors
from .space import (Param, Scalar, SweepSpecError, apply_point, check_value,
                    config_paths)

# Metric logged by mmengine for a validation evaluator type.
EVALUATOR_METRICS = {'IoUMetric': 'mIoU', 'Accuracy': 'accuracy/top1'}


class TrainingFailed(RuntimeError):
    """A seed's training process exited with an error."""


@dataclass
class Target:
    """One config of a sweep and the keys that apply to it."""
    config: str
    label: str
    cfg: Config
    params: List[Param]
    metric: str

    @property
    def names(self) -> Dict[str, str]:
        """Short column names of this target's keys."""
        return short_names([p.key for p in self.params])

    def points(self) -> List[Dict[str, Scalar]]:
        """The grid, in the order the values were given."""
        points: List[Dict[str, Scalar]] = [{}]
        for param in self.params:
            points = [
                dict(p, **{param.key: v}) for p in points
                for v in param.choices
            ]
        return points


@dataclass
class Sweep:
    """Everything a worker needs; built and checked by ``plan_sweep``."""
    targets: List[Target]
    seeds: List[int]
    work_dir: str
    storage: str
    study_name: str
    train_script: str
    search: str = 'grid'
    trials: Optional[int] = None
    mode: str = 'max'
    gpus: int = 1
    env: Dict[str, str] = field(default_factory=dict)
    cfg_options: Dict = field(default_factory=dict)

    def study_name_of(self, target: Target) -> str:
        return f'{self.study_name}/{target.label}'


def plan_sweep(configs: Sequence[str],
               params: Sequence[Param],
               seeds: Sequence[int],
               work_dir: str,
               train_script: str,
               storage: Optional[str] = None,
               study_name: Optional[str] = None,
               search: str = 'grid',
               trials: Optional[int] = None,
               metric: Optional[str] = None,
               mode: str = 'max',
               gpus: int = 1,
               env: Optional[Dict[str, str]] = None,
               cfg_options: Optional[Dict] = None) -> Sweep:
    """Load the configs and check every key and value against them.

    A key applies to the configs that have it (``beta`` to DKD, ``k`` and
    ``w2`` to GDKD); a key that no config has, a value of the wrong kind, a
    key or seed given twice, or a search without what it needs fail here,
    before anything trains.

    Raises:
        SweepSpecError, FileNotFoundError, KeyError: bad input.
    """
    if not configs:
        raise SweepSpecError('no config given')
    if not seeds or len(set(seeds)) != len(seeds):
        raise SweepSpecError(
            f'seeds must be distinct and at least one, got {list(seeds)}')
    keys = [p.key for p in params]
    for key in keys:
        if keys.count(key) > 1:
            raise SweepSpecError(f'{key} is swept twice')
    if search == 'tpe':
        if not trials or trials < 1:
            raise SweepSpecError('--search tpe needs --trials N (N >= 1)')
        if not params:
            raise SweepSpecError('--search tpe needs --range KEY=... specs')
    elif search != 'grid':
        raise SweepSpecError(f"search must be 'grid' or 'tpe', got "
                             f'{search!r}')
    elif any(p.is_range for p in params):
        raise SweepSpecError('a range (KEY=LOW:HIGH) needs --search tpe')
    if mode not in ('max', 'min'):
        raise SweepSpecError(f"mode must be 'max' or 'min', got {mode!r}")
    check_work_dir(work_dir)
    targets = []
    misses: Dict[str, List[str]] = {key: [] for key in keys}
    for config, label in zip(configs, config_labels(configs)):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file {config!r} does not exist')
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(cfg_options or {})
        applied = []
        for param in params:
            try:
                paths = config_paths(cfg, param.key)
            except KeyError as err:
                misses[param.key].append(f'{label}: {err.args[0]}')
                continue
            for value in param.choices or ():
                check_value(cfg, param.key, paths, value)
            applied.append(param)
        targets.append(
            Target(config, label, cfg, applied, metric
                   or default_metric(cfg, config)))
    for key, reasons in misses.items():
        if len(reasons) == len(configs):
            raise SweepSpecError(f'unknown config key {key!r}: ' +
                                 '; '.join(reasons))
    return Sweep(
        targets,
        list(seeds),
        work_dir,
        storage or default_storage(work_dir),
        study_name or osp.basename(osp.abspath(work_dir)),
        train_script,
        search=search,
        trials=trials,
        mode=mode,
        gpus=gpus,
        env=dict(env or {}),
        cfg_options=dict(cfg_options or {}))


def check_work_dir(work_dir: str) -> None:
    """The sweep dir, or the nearest part of its path that exists, must be
    a directory."""
    path = osp.abspath(work_dir)
    while not osp.exists(path):
        path = osp.dirname(path)
    if not osp.isdir(path):
        raise SweepSpecError(f'--work-dir {work_dir}: {path} is a file, not '
                             'a directory')


def default_storage(work_dir: str) -> str:
    return 'sqlite:///' + osp.abspath(osp.join(work_dir, 'sweep.db'))


def default_metric(cfg: Config, config: str) -> str:
    """The metric the config's checkpoint hook keeps the best of, else the
    one its validation evaluator reports."""
    save_best = cfg.get('default_hooks', {}).get('checkpoint',
                                                 {}).get('save_best')
    if isinstance(save_best, str) and save_best != 'auto':
        return save_best
    evaluator = cfg.get('val_evaluator') or {}
    kind = evaluator.get('type') if isinstance(evaluator, dict) else None
    if kind not in EVALUATOR_METRICS:
        raise KeyError(f'{config}: cannot tell which metric to read (val '
                       f'evaluator {kind!r}); pass --metric')
    return EVALUATOR_METRICS[kind]


def config_labels(configs: Sequence[str]) -> List[str]:
    """``gdkd``/``dkd`` from the configs' file names where that is unique,
    else the whole file names."""
    stems = [osp.splitext(osp.basename(c))[0] for c in configs]
    if len(set(stems)) != len(stems):
        raise ValueError(f'two configs share a file name: {stems}')
    firsts = [s.split('_')[0] for s in stems]
    return firsts if len(set(firsts)) == len(firsts) else stems


def short_names(keys: Sequence[str]) -> Dict[str, str]:
    """The last component of each key where that is unique."""
    lasts = [k.rsplit('.', 1)[-1] for k in keys]
    return {
        k: last if lasts.count(last) == 1 else k
        for k, last in zip(keys, lasts)
    }


def point_id(point: Dict[str, Scalar]) -> str:
    return json.dumps(point, sort_keys=True)


def point_slug(point: Dict[str, Scalar], names: Dict[str, str]) -> str:
    """A readable name for a point, e.g. ``k=3_w2=8`` (two points may read
    alike: ``'a b'`` and ``'a/b'`` both give ``a-b``)."""
    text = '_'.join(f'{names[k]}={v}' for k, v in point.items()) or 'default'
    return re.sub(r'[^\w.=+-]+', '-', text)


def seed_dir(sweep: Sweep, target: Target, point: Dict[str, Scalar],
             seed: int) -> str:
    """Where a seed of a point trains: ``LABEL/SLUG-HASH/seedN``, the hash
    taken over the exact values, so no two points share a folder.

    A grid point with a run in ``LABEL/SLUG/seedN`` (the layout without the
    hash) resumes there, when no other point of the grid has its slug.
    """
    slug = point_slug(point, target.names)
    digest = hashlib.sha1(point_id(point).encode()).hexdigest()[:8]
    base = osp.join(sweep.work_dir, target.label)
    unique = osp.join(base, f'{slug}-{digest}', f'seed{seed}')
    unhashed = osp.join(base, slug, f'seed{seed}')
    if osp.exists(unique) or not osp.isdir(unhashed) or \
            sweep.search != 'grid':
        return unique
    slugs = [point_slug(p, target.names) for p in target.points()]
    return unhashed if slugs.count(slug) == 1 else unique


# --- reading a study ------------------------------------------------------


@dataclass
class PointRecord:
    """What a study knows about one point."""
    point: Dict[str, Scalar]
    seeds: Dict[int, dict] = field(default_factory=dict)
    done: bool = False
    trial: Optional[int] = None
    value: Optional[float] = None  # the done trial's (None: not finite)


def read_points(study) -> Dict[str, PointRecord]:
    """Every point the study has seen: its finished seeds (from any trial,
    the latest wins) and whether it is done (a complete trial, or one whose
    value was not finite)."""
    import optuna
    records: Dict[str, PointRecord] = {}
    for trial in study.get_trials(deepcopy=False):
        if not trial.params and 'seeds' not in trial.user_attrs \
                and trial.state != optuna.trial.TrialState.COMPLETE:
            continue  # not sampled yet, or skipped
        key = point_id(trial.params)
        record = records.setdefault(key, PointRecord(dict(trial.params)))
        for seed, result in trial.user_attrs.get('seeds', {}).items():
            record.seeds[int(seed)] = result
        if trial.user_attrs.get('reused_from') is not None:
            continue
        if trial.state == optuna.trial.TrialState.COMPLETE or (
                trial.state == optuna.trial.TrialState.FAIL
                and trial.user_attrs.get('nonfinite')):
            record.done, record.trial = True, trial.number
            record.value = trial.value
    return records


def mean_std(values: Sequence[float]):
    """Mean and sample standard deviation (None for one value)."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


# --- running --------------------------------------------------------------


class Progress:
    """Runs done and to do in the whole sweep (all workers), with an ETA
    from the measured seconds per run shared by the live workers.

    Args:
        total (int): seed runs in the sweep.
        remaining: the seed runs not finished yet (read from the studies).
        workers: how many workers are training now.
        seconds (list[float]): measured seconds of finished runs.
    """

    def __init__(self, total: int, remaining: Callable[[], int],
                 workers: Callable[[], int], seconds: List[float],
                 log: Callable[[str], None]) -> None:
        self.total, self.remaining, self.workers = total, remaining, workers
        self.seconds, self.log = list(seconds), log
        self.start = time.time()

    def finished(self, seconds: float) -> None:
        self.seconds.append(seconds)

    def line(self, message: str) -> None:
        left, workers = self.remaining(), max(1, self.workers())
        eta = (
            statistics.fmean(self.seconds) * left /
            workers if self.seconds else float('nan'))
        self.log(f'[sweep {self.total - left}/{self.total} runs | {workers} '
                 f'worker(s) | elapsed {hms(time.time() - self.start)} | '
                 f'eta {hms(eta) if left else "0:00:00"}] {message}')


def hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return '?'
    seconds = int(round(seconds))
    return f'{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def run_sweep(sweep: Sweep,
              log: Callable[[str], None] = print,
              after_point: Optional[Callable[[], None]] = None) -> int:
    """Train every point of every target that no worker has trained or is
    training; return the number of seed runs trained by this call.

    Args:
        log: where progress lines go.
        after_point: called after each finished point (writes the report).
    """
    os.makedirs(sweep.work_dir, exist_ok=True)
    with storage_errors(sweep.storage):
        storage = rdb_storage(sweep.storage)
        claims = Claims(sweep.storage)
    studies = [open_study(sweep, t, storage) for t in sweep.targets]
    progress = Progress(
        sum(
            len(sweep.seeds) *
            (len(t.points()) if sweep.search == 'grid' else sweep.trials)
            for t in sweep.targets),
        lambda: sum(
            runs_left(sweep, t, s) for t, s in zip(sweep.targets, studies)),
        lambda: claims.live_owners(f'{sweep.study_name}/'), [
            r['seconds'] for s in studies for rec in read_points(s).values()
            for r in rec.seeds.values()
        ], log)
    trained = 0
    for target, study in zip(sweep.targets, studies):
        worker = _StudyWorker(sweep, target, study, claims, progress)
        while True:
            point_done = worker.step()
            if point_done is None:
                break
            trained += point_done
            if after_point is not None:
                after_point()
    return trained


@functools.lru_cache()
def rdb_storage(url: str, attempts: int = 10):
    """The Optuna storage at ``url``, opened once per process.

    Workers that open a new database at the same moment race to create
    Optuna's tables, and the losers fail; they retry once the tables exist.
    """
    import optuna
    import sqlalchemy as sa
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=sqlite_engine_kwargs(url))
        except (sa.exc.OperationalError, sa.exc.IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random())


def open_study(sweep: Sweep, target: Target, storage):
    """Create or load the target's study; a study started with other
    settings is refused (its points would not compare)."""
    import optuna
    if sweep.search == 'grid':
        sampler = _grid_sampler_class()({
            p.key: list(p.choices)
            for p in target.params
        },
                                        seed=0)
    else:
        sampler = optuna.samplers.TPESampler(seed=0)
    study = optuna.create_study(
        storage=storage,
        study_name=sweep.study_name_of(target),
        sampler=sampler,
        direction='maximize' if sweep.mode == 'max' else 'minimize',
        load_if_exists=True)
    settings = study_settings(sweep, target)
    stored = study.user_attrs.get('settings')
    if stored is None:
        study.set_user_attr('settings', settings)
    elif stored != settings:
        changed = sorted(k for k in settings if settings[k] != stored.get(k))
        raise ValueError(
            f'study {study.study_name!r} in {sweep.storage} was started with '
            f'other settings ({", ".join(changed)} differ: {stored} vs '
            f'{settings}); use another --work-dir or --study-name')
    return study


def _grid_sampler_class():
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid sampler, without its ``study.stop()`` when the grid
        is exhausted: that works only inside ``study.optimize``, and here
        the worker loop decides when a sweep is done."""

        def after_trial(self, study, trial, state, values) -> None:
            pass

    return GridSampler


def study_settings(sweep: Sweep, target: Target) -> dict:
    """What a study's numbers depend on besides the swept point."""
    return json.loads(
        json.dumps(
            dict(
                config=osp.basename(target.config),
                cfg_options=sweep.cfg_options,
                seeds=sweep.seeds,
                metric=target.metric,
                mode=sweep.mode,
                search=sweep.search,
                space={
                    p.key:
                    list(p.choices) if p.choices is not None else
                    [p.low, p.high, 'log' if p.log else 'linear']
                    for p in target.params
                }),
            default=str))


def runs_left(sweep: Sweep, target: Target, study) -> int:
    """Seed runs of the target not finished yet (by any worker)."""
    records = read_points(study)
    if sweep.search == 'grid':
        points = [records.get(point_id(p)) for p in target.points()]
    else:
        done = sum(r.done for r in records.values())
        points = [None] * max(0, sweep.trials - done)
    return sum(
        len(sweep.seeds) -
        (0 if r is None else len(set(r.seeds) & set(sweep.seeds)))
        for r in points if r is None or not r.done)


class _StudyWorker:
    """Asks the study for points and trains them, one point per step."""

    def __init__(self, sweep: Sweep, target: Target, study, claims: Claims,
                 progress: Progress) -> None:
        self.sweep, self.target, self.study = sweep, target, study
        self.claims, self.progress = claims, progress
        self.name = sweep.study_name_of(target)
        self.skips = 0

    def free_points(self, records) -> Optional[List[Dict[str, Scalar]]]:
        """Grid points no one has done or is doing (None for TPE)."""
        if self.sweep.search != 'grid':
            return None
        return [
            p for p in self.target.points()
            if not (records.get(point_id(p)) or PointRecord(p)).done
            and not self.claims.held_elsewhere(self.name, point_id(p))
        ]

    def step(self) -> Optional[int]:
        """Train one point. Returns the seed runs trained (0 when the point
        was done or held by another worker), None when nothing is left."""
        import optuna
        records = read_points(self.study)
        free = self.free_points(records)
        if free is not None and not free:
            return None
        if free is None and (sum(r.done for r in records.values())
                             >= self.sweep.trials or self.skips >= 10):
            return None
        trial = self.study.ask()
        point = {p.key: suggest(trial, p) for p in self.target.params}
        key = point_id(point)
        if key in records and records[key].done:
            return self._skip(trial, records[key], free)
        before = self.claims.get(self.name, key)
        holder = self.claims.acquire(self.name, key, trial.number)
        if holder is not None:
            if holder.trial == trial.number:
                return 0  # one enqueued trial popped by two workers
            return self._skip(trial, None, free)
        if before is not None and before.trial != trial.number:
            self._fail_dead_trial(before.trial)
        latest = read_points(self.study).get(key)
        if latest is not None and latest.done:  # finished meanwhile
            self.claims.release(self.name, key)
            return self._skip(trial, latest, free)
        self.skips = 0
        try:
            with self.claims.heartbeat(self.name, key):
                trained, mean = self._train_point(trial, point, latest)
        except BaseException:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.claims.release(self.name, key)
            raise
        if math.isfinite(mean):
            self.study.tell(trial, mean)
        else:
            trial.set_user_attr('nonfinite', True)
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.claims.release(self.name, key)
        return trained

    def _fail_dead_trial(self, number: int) -> None:
        """Mark the trial of a dead worker whose claim we took over."""
        import optuna
        try:
            self.study.tell(number, state=optuna.trial.TrialState.FAIL)
        except ValueError:
            pass  # it had finished after all

    def _skip(self, trial, done: Optional[PointRecord], free) -> int:
        """Close a trial whose point is done (``done``) or held by another
        worker (None)."""
        import optuna
        self.skips += 1
        if self.sweep.search == 'tpe' and done is not None:
            # TPE proposed a finished point again: tell it the known value,
            # or that it failed where that point's metric was not finite.
            trial.set_user_attr('reused_from', done.trial)
            if done.value is None:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(trial, done.value)
            return 0
        trial.set_user_attr('skipped',
                            'done' if done is not None else 'held by a worker')
        self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        if free:
            # The grid sampler only re-offers unfinished points at random
            # once every point has started; point it at one.
            self.study.enqueue_trial(free[0])
        return 0

    def _train_point(self, trial, point, record: Optional[PointRecord]):
        """Train the seeds the point lacks; return the runs trained and the
        mean over seeds."""
        names = self.target.names
        title = f'{self.target.label} ' + (' '.join(f'{names[k]}={v}'
                                                    for k, v in point.items())
                                           or '(config)')
        seeds = {
            s: r
            for s, r in (record.seeds if record else {}).items()
            if s in self.sweep.seeds
        }
        trial.set_user_attr('seeds', {str(s): r for s, r in seeds.items()})
        trial.set_user_attr('worker', self.claims.owner)
        trained = 0
        for seed in self.sweep.seeds:
            if seed in seeds:
                continue
            work_dir = seed_dir(self.sweep, self.target, point, seed)
            self.progress.line(f'{title}: training seed {seed} in {work_dir}')
            seeds[seed] = train_seed(self.sweep, self.target, point, seed,
                                     work_dir)
            trained += 1
            self.progress.finished(seeds[seed]['seconds'])
            trial.set_user_attr('seeds', {str(s): r for s, r in seeds.items()})
            if 'diverged' in seeds[seed]:
                # A failed point, never a score (its mean is NaN); the other
                # seeds would not change that.
                self.progress.line(
                    f'{title}: seed {seed} stopped at a non-finite loss: '
                    f'{seeds[seed]["diverged"]}')
                return trained, float('nan')
            self.progress.line(
                f'{title}: seed {seed} {self.target.metric} '
                f'{seeds[seed]["value"]:.2f} ({hms(seeds[seed]["seconds"])})')
        return trained, statistics.fmean(
            float(seeds[s]['value']) for s in self.sweep.seeds)


def suggest(trial, param: Param) -> Scalar:
    """The trial's value of one key (from the grid, or TPE's choice)."""
    if not param.is_range:
        return trial.suggest_categorical(param.key, param.choices)
    if isinstance(param.low, int) and isinstance(param.high, int):
        return trial.suggest_int(
            param.key, param.low, param.high, log=param.log)
    return trial.suggest_float(param.key, param.low, param.high, log=param.log)


def seed_config(sweep: Sweep, target: Target, point: Dict[str, Scalar],
                seed: int, work_dir: str) -> Config:
    """The target's config with the point's values, the seed and the work
    dir set."""
    cfg = copy.deepcopy(target.cfg)  # Config.copy shares nested dicts
    apply_point(cfg, point)
    cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    cfg.work_dir = work_dir
    return cfg


def write_config(cfg: Config, path: str) -> None:
    """``cfg`` as a Python file of literals.

    What ``Config.dump`` writes, less its yapf pass, which takes seconds per
    config.
    """
    with open(path, 'w') as f:
        for key, value in cfg.to_dict().items():
            f.write(f'{key} = {value!r}\n')


def train_seed(sweep: Sweep, target: Target, point: Dict[str, Scalar],
               seed: int, work_dir: str) -> dict:
    """Train one seed of a point with tools/train.py; its best metric.

    Returns:
        dict: ``value``, ``step`` (where the best was logged), ``seconds``,
        ``work_dir``, ``host``; a run stopped by a non-finite loss has
        ``value`` NaN and the error in ``diverged``.

    Raises:
        TrainingFailed: the run failed otherwise.
    """
    os.makedirs(work_dir, exist_ok=True)
    config_file = osp.join(work_dir, 'sweep_config.py')
    write_config(
        seed_config(sweep, target, point, seed, work_dir), config_file)
    log_file = osp.join(work_dir, 'sweep_train.log')
    start = time.time()
    with open(log_file, 'a') as log:
        offset = log.tell()
        code = subprocess.call(
            train_command(sweep, config_file, work_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, **sweep.env))
    seconds = time.time() - start
    record = dict(
        seconds=round(seconds, 1),
        work_dir=osp.abspath(work_dir),
        host=socket.gethostname())
    if code != 0:
        reason = non_finite_reason(log_file, offset)
        if reason is None:
            raise TrainingFailed(
                f'training {target.label} {point} seed {seed} failed (exit '
                f'{code}); see {log_file}')
        return dict(value=float('nan'), step=None, diverged=reason, **record)
    best = best_metric(work_dir, target.metric, sweep.mode)
    if best is None:
        raise TrainingFailed(
            f'{work_dir} logged no validation {target.metric!r}: does the '
            'config validate (val_cfg, val_interval), and is --metric the '
            'key it logs? See ' + log_file)
    return dict(value=best[0], step=best[1], **record)


def non_finite_reason(log_file: str, offset: int) -> Optional[str]:
    """The message of the NonFiniteLossError that ended a run, if one did,
    from what the run wrote to ``log_file`` past ``offset``."""
    with open(log_file, errors='replace') as f:
        f.seek(offset)
        found = re.findall(rf'{NonFiniteLossError.__name__}: (.*)', f.read())
    return found[-1].strip() if found else None


def train_command(sweep: Sweep, config_file: str, work_dir: str) -> list:
    """tools/train.py on the seed's config; torchrun for several GPUs."""
    cmd = [sys.executable]
    if sweep.gpus > 1:
        cmd += [
            '-m', 'torch.distributed.run', '--standalone',
            f'--nproc_per_node={sweep.gpus}'
        ]
    cmd += [
        sweep.train_script, config_file, '--work-dir', work_dir, '--resume'
    ]
    if sweep.gpus > 1:
        cmd += ['--launcher', 'pytorch']
    return cmd
