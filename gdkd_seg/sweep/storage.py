"""The Optuna side of a sweep: the database, one study per config, and what
a study knows about each point.

The study lives in an SQL database (SQLite in the work dir by default), so a
sweep that is stopped resumes where it stopped; several workers may share
one database (``--storage``).
"""
import functools
import json
import os.path as osp
import random
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

from .claims import sqlite_engine_kwargs
from .naming import point_id
from .plan import Sweep, Target
from .space import Scalar


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
