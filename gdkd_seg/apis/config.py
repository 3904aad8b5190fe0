"""Config handling shared by tools/train.py, tools/test.py and the demo."""
import argparse
import logging
import os
import os.path as osp
import re
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from ..distillers.base import resolve_model_cfg
from .cpu_distributed import CPUDistributedDataParallel

DISTILLER_TYPES = ('SegDistiller', 'ClsDistiller')
#: mmrazor's distillation algorithms keep the student as ``architecture``.
MMRAZOR_ROLES = {'student': 'architecture', 'teacher': 'teacher'}
#: ``custom_imports`` that only a distiller needs; a plain student does not.
DISTILLATION_IMPORTS = ('gdkd_seg', 'gdkd_seg.interop.mmrazor')
#: Hooks every run of the tools gets (``default_hooks.KEY=None`` drops one):
#: stop at the first non-finite loss, resume with the saved random state.
RUN_HOOKS = dict(
    finite_loss=dict(type='FiniteLossHook'),
    random_state=dict(type='RandomStateHook'))


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
    """Load a config, apply --cfg-options, --launcher and --work-dir.

    Every config gets :data:`RUN_HOOKS` in its ``default_hooks`` unless it
    sets them (``--cfg-options default_hooks.finite_loss=None`` trains on
    through a non-finite loss). Without CUDA, :func:`prepare_cpu_run`
    adapts a distributed run and logs each change it makes.
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    hooks = {**RUN_HOOKS, **(cfg.get('default_hooks') or {})}
    # mmengine's Runner takes None only for its own default hooks.
    cfg.default_hooks = {
        k: v
        for k, v in hooks.items() if v is not None or k not in RUN_HOOKS
    }
    if not torch.cuda.is_available():
        prepare_cpu_run(cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def prepare_cpu_run(cfg: Config) -> None:
    """Make a distributed (torchrun) config run in CPU processes.

    A single process needs nothing: mmengine's Runner reverts SyncBN to BN
    itself. With ``launcher='pytorch'``, mmengine's launcher calls
    ``torch.cuda.set_device`` and its DDP wrapper passes device ids, so:

    * the process group backend becomes gloo (NCCL needs CUDA);
    * the model is wrapped by :class:`CPUDistributedDataParallel` (SyncBN
      reverted to BN on the built model, no device ids), keeping the
      wrapper arguments the Runner would have used;
    * the gloo process group is initialised here; the Runner then skips its
      own init.

    Each change is logged in one line. The slurm and mpi launchers set a
    CUDA device and are refused.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher in ('slurm', 'mpi'):
        raise ValueError(
            f'--launcher {launcher} needs CUDA (mmengine sets a CUDA device '
            'per process); without CUDA launch with torchrun: '
            'tools/dist_train.sh CONFIG NPROC (--launcher pytorch)')
    if launcher != 'pytorch':
        return
    dist_cfg = cfg.env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend') != 'gloo':
        _log_cpu_change(f"env_cfg.dist_cfg.backend {dist_cfg.get('backend')!r}"
                        " -> 'gloo' (NCCL needs CUDA)")
        dist_cfg['backend'] = 'gloo'
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    old_type = wrapper.pop('type', 'MMDistributedDataParallel')
    wrapper.pop('device_ids', None)
    cfg.model_wrapper_cfg = {
        # What the Runner passes when the config names no wrapper.
        'broadcast_buffers': False,
        'find_unused_parameters': cfg.get('find_unused_parameters', False),
        **wrapper,
        'type': CPUDistributedDataParallel.__name__,
    }
    _log_cpu_change(f'model_wrapper_cfg.type {old_type} -> '
                    f'{CPUDistributedDataParallel.__name__} (SyncBN reverted '
                    'to BN per process, no device ids)')
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')
        _log_cpu_change(
            'started the gloo process group (rank '
            f'{torch.distributed.get_rank()} of '
            f'{torch.distributed.get_world_size()}) before the Runner, whose '
            'pytorch launcher would call torch.cuda.set_device')


def _log_cpu_change(change: str) -> None:
    print_log(f'no CUDA: {change}', logger='current', level=logging.WARNING)


def student_config(cfg: Config) -> Config:
    """The same config with a distiller model replaced by its student.

    Used to test or export a distilled student as a plain model: the teacher
    is neither built nor loaded. Handles gdkd_seg's distillers and mmrazor's
    (``SingleTeacherDistill``: the student is ``architecture``, a model dict
    or ``dict(cfg_path='mmseg::...')``); other configs come back unchanged.
    """
    return _model_config(cfg, 'student')


def teacher_config(cfg: Config) -> Config:
    """The same config with a distiller model replaced by its teacher (used
    by the analysis tools to run the teacher alone)."""
    return _model_config(cfg, 'teacher')


def plain_student_config(cfg: Config) -> Config:
    """:func:`student_config` without the imports only a distiller needs.

    This is the config plain mmseg reads (its ``tools/test.py``,
    ``get_flops.py``, ``print_config.py``, ...): its ``model`` is the
    student segmentor and nothing imports gdkd_seg or mmrazor.
    """
    cfg = student_config(cfg).copy()
    imports = cfg.get('custom_imports')
    if imports is not None:
        kept = [
            name for name in imports.get('imports', [])
            if name not in DISTILLATION_IMPORTS
        ]
        if kept:
            cfg.custom_imports = dict(imports, imports=kept)
        else:
            cfg.pop('custom_imports')
    return cfg


def _model_config(cfg: Config, role: str) -> Config:
    """A distiller's ``role`` model as a plain segmentor config, with the
    distiller's data preprocessor as in training (plain configs unchanged)."""
    model_type = str(cfg.model.get('type', ''))
    if model_type in DISTILLER_TYPES:
        model = resolve_model_cfg(cfg.model[role], role)
    elif 'architecture' in cfg.model:
        model = _mmrazor_model(cfg.model[MMRAZOR_ROLES[role]])
    else:
        return cfg
    cfg = cfg.copy()
    if cfg.model.get('data_preprocessor') is not None:
        model['data_preprocessor'] = cfg.model.data_preprocessor
    cfg.model = model
    val_loop = cfg.get('val_cfg') or {}
    if 'SingleTeacherDistillValLoop' in str(val_loop.get('type', '')):
        # mmrazor's loop also evaluates the teacher; a plain model has none.
        cfg.val_cfg = dict(type='ValLoop')
    return cfg


def _mmrazor_model(spec: dict) -> dict:
    """The model dict mmrazor builds from an ``architecture``/``teacher``
    entry: a model dict, or ``dict(cfg_path=..., pretrained=..., **kwargs)``
    resolved as ``mmengine.hub.get_model`` does (the config's model, its
    data preprocessor, ``kwargs`` as defaults)."""
    spec = dict(spec)
    if 'type' in spec or 'cfg_path' not in spec:
        return resolve_model_cfg(spec, 'mmrazor model')
    from mmengine.hub import get_config
    spec.pop('pretrained', None)  # loads model-zoo weights at build time
    source = get_config(spec.pop('cfg_path'))
    model = {**spec, **source.model.to_dict()}
    if 'data_preprocessor' in source:
        model['data_preprocessor'] = source.data_preprocessor.to_dict()
    return model


def check_total_batch(cfg: Config, config_path: str,
                      world_size: int) -> Optional[int]:
    """Warn when GPUs x batch differs from the recipe's total batch.

    Recipes are tuned for a total batch: ``auto_scale_lr.base_batch_size``
    where the config carries it (mmengine's key, which
    ``auto_scale_lr.enable=True`` scales the learning rate by), else what the
    config's name declares (``8xb2`` = 16 images per step). A different
    world size silently changes the recipe.

    Returns:
        int | None: the recipe's total batch, if the config says one.
    """
    declared = (cfg.get('auto_scale_lr') or {}).get('base_batch_size')
    source = 'auto_scale_lr.base_batch_size'
    if declared is None:
        match = re.search(r'_(\d+)xb(\d+)', osp.basename(config_path))
        if match is None:
            return None
        declared = int(match.group(1)) * int(match.group(2))
        source = f'its name ({match.group(1)} GPUs x {match.group(2)})'
    actual = world_size * cfg.train_dataloader.batch_size
    if actual != declared:
        print_log(
            f'{osp.basename(config_path)} declares a total batch of '
            f'{declared} ({source}), but this run uses {world_size} x '
            f'{cfg.train_dataloader.batch_size} = {actual}: the recipe (lr, '
            f'schedule) assumes {declared}. Scale the learning rate '
            '(--cfg-options auto_scale_lr.enable=True '
            f'auto_scale_lr.base_batch_size={declared}) or use the declared '
            'GPU count.',
            logger='current',
            level=logging.WARNING)
    return declared
