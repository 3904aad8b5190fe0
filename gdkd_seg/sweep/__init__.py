"""Seeded sweeps of training configs on Optuna (``tools/sweep.py``).

``space`` parses what to vary and checks it against the configs, ``study``
trains the points (one Optuna study per config, a trial per point, a
training process per seed), ``claims`` keeps workers that share a study from
training a point twice, and ``report`` writes the table, JSON and figure.
"""
from .claims import SweepStorageError
from .report import collect_results, write_report
from .space import Param, SweepSpecError, parse_grid, parse_range
from .study import Sweep, plan_sweep, run_sweep

__all__ = [
    'Param', 'Sweep', 'SweepSpecError', 'SweepStorageError', 'collect_results',
    'parse_grid', 'parse_range', 'plan_sweep', 'run_sweep', 'write_report'
]
