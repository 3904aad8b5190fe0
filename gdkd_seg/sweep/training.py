"""Train one seed of a point.

Each seed is trained by ``tools/train.py`` in its own process, on a config
file written for it (the config with the point's values and the seed set):
what ran is on disk beside its logs, memory a run leaves
behind (CUDA caches, dataloader workers, mmengine's global registries and
message hubs) goes away with its process, and the run can be launched like
any other (``torchrun`` for several GPUs per trial). The value of a seed is
the best validation metric mmengine logged (``read_scalars``), never a number
scraped from the console.
"""
import copy
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import time
from typing import Dict, Optional

from mmengine.config import Config

from ..apis.scalars import best_metric
from ..engine import NonFiniteLossError
from .plan import Sweep, Target
from .space import Scalar, apply_point


class TrainingFailed(RuntimeError):
    """A seed's training process exited with an error."""


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
