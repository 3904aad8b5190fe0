"""Read what mmengine logged about a run from its work dir.

mmengine's ``LocalVisBackend`` writes one JSON object per line to
``WORK_DIR/<timestamp>/vis_data/scalars.json``: training records carry
``iter`` (and ``epoch`` for epoch-based loops), the losses, ``lr`` and the
seconds per iteration (``time``); validation records carry the metrics
(``mIoU``, ``accuracy/top1``, ...) and ``step``, the iteration or epoch at
which they were computed. A resumed run starts a new ``<timestamp>`` folder,
so a work dir may hold several; they are read in time order and, where two
runs logged the same step, the later one wins. These are the values the tools
read (demo, sweep), rather than scraping the console.
"""
import glob
import json
import math
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Tuple


class RunScalars(NamedTuple):
    """A run's logged scalars: training and validation records in step
    order."""
    train: List[Dict[str, float]]
    val: List[Dict[str, float]]


def scalars_files(work_dir: str) -> List[str]:
    """The ``scalars.json`` files of a work dir, oldest run first."""
    return sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))


def read_scalars(work_dir: str) -> RunScalars:
    """All logged records of the runs in ``work_dir``.

    Returns:
        RunScalars: ``train`` records (they have ``iter``) sorted by
        ``iter``, ``val`` records (metrics, no ``iter``) sorted by ``step``;
        empty lists when nothing was logged yet.
    """
    train: Dict[int, dict] = {}
    val: Dict[int, dict] = {}
    for path in scalars_files(work_dir):
        with open(path) as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    # The last line of a run killed mid-write; any other
                    # broken line is a real problem worth naming.
                    if f.readline():
                        raise ValueError(
                            f'{path}:{number} is not JSON: {line[:80]!r}')
                    break
                if 'iter' in record:
                    train[int(record['iter'])] = record
                else:
                    val[int(record['step'])] = record
    return RunScalars([train[k] for k in sorted(train)],
                      [val[k] for k in sorted(val)])


def best_metric(work_dir: str,
                key: str = 'mIoU',
                mode: str = 'max') -> Optional[Tuple[float, int]]:
    """The best logged validation value of ``key`` and its step.

    Args:
        work_dir (str): the run's work dir.
        key (str): a validation metric, e.g. ``'mIoU'`` or
            ``'accuracy/top1'``.
        mode (str): ``'max'`` or ``'min'``.

    Returns:
        tuple | None: ``(value, step)``, the earliest step on ties, among
        the finite values; ``(nan, step)`` of the last validation if none
        is finite (a diverged run stays visible); None if no validation
        logged ``key``.
    """
    if mode not in ('max', 'min'):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    logged = [(float(r[key]), int(r['step']))
              for r in read_scalars(work_dir).val if key in r]
    if not logged:
        return None
    points = [p for p in logged if math.isfinite(p[0])]
    if not points:
        return math.nan, logged[-1][1]
    sign = -1 if mode == 'max' else 1
    return min(points, key=lambda p: (sign * p[0], p[1]))
