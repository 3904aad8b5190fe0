"""Seeded sweeps of training configs on Optuna (``tools/sweep.py``).

``space`` parses what to vary, ``plan`` checks it against the configs and
``naming`` names the points and their folders. ``worker`` trains the points
(one Optuna study per config, kept by ``storage``, a trial per point,
a training process per seed by ``training``) and reports ``progress``;
``claims`` keeps workers that share a study from training a point twice, and
``report`` writes the table, JSON and figure.
"""
from .claims import SweepStorageError
from .plan import Sweep, plan_sweep
from .report import collect_results, write_report
from .space import Param, SweepSpecError, parse_grid, parse_range
from .worker import run_sweep

__all__ = [
    'Param', 'Sweep', 'SweepSpecError', 'SweepStorageError', 'collect_results',
    'parse_grid', 'parse_range', 'plan_sweep', 'run_sweep', 'write_report'
]
