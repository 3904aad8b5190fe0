"""Run a sweep: one Optuna study per config, a trial per point, a training
run per seed (``training.train_seed``).

A sweep that is stopped resumes where it stopped: finished points are never
trained again, finished seeds of an unfinished point neither, and a seed cut
off mid-run resumes from its last checkpoint. Several workers may share one
database (``--storage``); ``claims.Claims`` makes sure that no point is
trained twice.
"""
import math
import os
import statistics
from typing import Callable, Dict, List, Optional

from .claims import Claims, storage_errors
from .naming import point_id, seed_dir
from .plan import Sweep, Target
from .progress import Progress, hms
from .space import Param, Scalar
from .storage import (PointRecord, open_study, rdb_storage, read_points,
                      runs_left)
from .training import train_seed


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
            if not math.isfinite(seeds[seed]['value']):
                # A failed point, never a score (its mean is NaN); the other
                # seeds would not change that.
                reason = seeds[seed].get('diverged')
                self.progress.line(
                    f'{title}: seed {seed} ' +
                    (f'stopped at a non-finite loss: {reason}' if reason
                     else 'has no finite validation'))
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
