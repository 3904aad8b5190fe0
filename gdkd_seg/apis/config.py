"""Config handling shared by tools/train.py, tools/test.py and the demo."""
import argparse
import logging
import os
import os.path as osp
import re
from typing import Optional

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log

from ..distillers.base import resolve_model_cfg

DISTILLER_TYPES = ('SegDistiller', 'ClsDistiller')


def add_launch_args(parser: argparse.ArgumentParser) -> None:
    """The flags mmseg's train/test tools share."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value (see mmseg)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2) or
    # --local_rank (older); torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(path: str, args: argparse.Namespace) -> Config:
    """Load a config, apply --cfg-options, --launcher and --work-dir."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if not torch.cuda.is_available():
        prepare_cpu_run(cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def prepare_cpu_run(cfg: Config) -> None:
    """Make a config run without CUDA, distributed (gloo) or not.

    * SyncBN has no CPU kernel and mmengine reverts it to BN only for
      non-distributed runs, so it becomes BN here (a distiller's student and
      teacher config paths are resolved to dicts to reach their norm layers).
    * mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and its
      DDP wrapper passes ``device_ids``; for torchrun on CPU the gloo process
      group is initialised here (the Runner then skips its own init) and DDP
      gets ``device_ids=None``.
    """
    if cfg.model.get('type') in DISTILLER_TYPES:
        for role in ('student', 'teacher'):
            cfg.model[role] = resolve_model_cfg(cfg.model[role], role)
    cfg.model = _replace_type(cfg.model, 'SyncBN', 'BN')
    if cfg.get('launcher') == 'pytorch':
        cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None,
            **{k: v for k, v in (cfg.get('model_wrapper_cfg') or {}).items()
               if k not in ('type', 'device_ids')})
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend='gloo')


def _replace_type(node, old: str, new: str):
    if isinstance(node, dict):
        return ConfigDict({
            k: new if k == 'type' and v == old else _replace_type(v, old, new)
            for k, v in node.items()
        })
    if isinstance(node, (list, tuple)):
        return type(node)(_replace_type(v, old, new) for v in node)
    return node


def student_config(cfg: Config) -> Config:
    """The same config with a distiller model replaced by its student.

    Used to test or export a distilled student as a plain mmseg model: the
    teacher is neither built nor loaded.
    """
    if cfg.model.get('type') not in DISTILLER_TYPES:
        return cfg
    cfg = cfg.copy()
    student = resolve_model_cfg(cfg.model.student, 'student')
    if cfg.model.get('data_preprocessor') is not None:
        student['data_preprocessor'] = cfg.model.data_preprocessor
    cfg.model = student
    return cfg


def check_total_batch(cfg: Config, config_path: str,
                      world_size: int) -> Optional[int]:
    """Warn when GPUs x batch differs from what the config's name declares.

    Recipes are tuned for a total batch (``8xb2`` = 16 images per step); a
    different world size silently changes the recipe.

    Returns:
        int | None: the declared total batch, if the name declares one.
    """
    match = re.search(r'_(\d+)xb(\d+)', osp.basename(config_path))
    if match is None:
        return None
    declared = int(match.group(1)) * int(match.group(2))
    actual = world_size * cfg.train_dataloader.batch_size
    if actual != declared:
        print_log(
            f'{osp.basename(config_path)} declares a total batch of '
            f'{declared} ({match.group(1)} GPUs x {match.group(2)}), but '
            f'this run uses {world_size} x {cfg.train_dataloader.batch_size}'
            f' = {actual}: the recipe (lr, schedule) assumes {declared}. '
            'Scale the learning rate or use the declared GPU count.',
            logger='current',
            level=logging.WARNING)
    return declared
