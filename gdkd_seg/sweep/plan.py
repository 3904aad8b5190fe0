"""Plan a sweep: the configs, the keys that apply to each, the seeds and
where it all goes, checked before anything trains."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config

from .naming import config_labels, short_names
from .space import Param, Scalar, SweepSpecError, check_value, config_paths

# Metric logged by mmengine for a validation evaluator type.
EVALUATOR_METRICS = {'IoUMetric': 'mIoU', 'Accuracy': 'accuracy/top1'}


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
