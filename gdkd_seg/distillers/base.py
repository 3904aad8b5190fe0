"""What every distiller shares: a trainable student beside a frozen teacher.

The teacher is built once, loaded from ``teacher_ckpt``, frozen, kept in eval
mode for its whole life (its BN statistics never move), run under
``no_grad`` (optionally in bf16/fp16 autocast) and left out of every saved
checkpoint. Subclasses only say how logits are obtained and which losses
they feed.
"""
import copy
import os.path as osp
import re
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from typing import Dict, Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint

from ..compat import local_file_problem
from ..engine.finite_loss_hook import non_finite_tensors

ModelSpec = Union[str, dict, ConfigDict]

_AUTOCAST_DTYPES = {
    None: None,
    'fp32': None,
    'bf16': torch.bfloat16,
    'fp16': torch.float16
}


def resolve_model_cfg(spec: ModelSpec, role: str) -> dict:
    """A model dict from a dict, or from the ``model`` of a config file.

    Args:
        spec (str | dict): a model dict (``type='EncoderDecoder', ...``) or a
            config path, e.g. ``'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_
            cityscapes-512x1024.py'``.
        role (str): 'student' or 'teacher', for error messages.
    """
    if isinstance(spec, str):
        try:
            # mmengine resolves `pkg::path` only as a `_base_`.
            cfg = Config.fromstring(f'_base_ = {spec!r}', '.py') \
                if '::' in spec else Config.fromfile(spec)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f'{role} config {spec!r} was not found: {err}') from err
        if 'model' not in cfg:
            raise KeyError(f'{role} config {spec!r} has no `model` section')
        spec = cfg.model
    if not isinstance(spec, dict) or 'type' not in spec:
        raise TypeError(f'{role} must be a model dict with a `type` or a '
                        f'config path, got {spec!r}')
    return copy.deepcopy(dict(spec))


def _is_url(path: str) -> bool:
    return '://' in path


def load_teacher_checkpoint(teacher: nn.Module, path: str) -> None:
    """Load ``path`` into ``teacher``; fail with a message saying what's wrong.

    Accepts mmseg/mmpretrain model-zoo checkpoints as published (a dict with
    ``state_dict``, or a bare state dict, keys with or without DDP's
    ``module.`` prefix), local paths or any URL mmengine loads. Every teacher
    weight must come from the checkpoint with its shape; keys the teacher
    does not have are logged and ignored. Every rank of a distributed run
    raises the same errors.

    Raises:
        FileNotFoundError, IsADirectoryError: a local ``path`` is no
            file.
        UnsafeCheckpointError, CorruptCheckpointError: see
            :func:`gdkd_seg.compat.safe_torch_load`.
        RuntimeError: it cannot be fetched, holds no state dict, or does
            not fit the teacher (the message names missing weights).
        ValueError: a weight holds NaN or inf (the message names it).
    """
    problem = None if _is_url(path) else local_file_problem(
        osp.expanduser(path), 'teacher checkpoint')
    if problem is not None:
        raise type(problem)(
            f'{problem}. Set `teacher_ckpt` to a local file or URL (None '
            'trains against a random teacher).')
    try:
        checkpoint = _load_checkpoint(path, map_location='cpu')
    except OSError as err:  # a failed download
        raise RuntimeError(
            f'could not load teacher checkpoint {path!r}: {err}') from err
    state_dict = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise RuntimeError(f'teacher checkpoint {path!r} holds no state dict')
    # torch's load_state_dict, not mmengine's: mmengine raises a strict
    # load's error on rank 0 only, and the other DDP ranks would train on a
    # half-loaded teacher until the first collective hangs.
    revised = OrderedDict(
        (re.sub(r'^module\.', '', k), v) for k, v in state_dict.items())
    revised._metadata = getattr(state_dict, '_metadata', OrderedDict())
    try:
        keys = teacher.load_state_dict(revised, strict=False)
    except RuntimeError as err:  # shapes that do not fit
        raise RuntimeError(f'teacher checkpoint {path!r} does not fit the '
                           f'teacher model: {str(err).strip()}') from err
    missing = [
        k for k in keys.missing_keys if not k.endswith('num_batches_tracked')
    ]
    if missing:
        raise RuntimeError(
            f'teacher checkpoint {path!r} does not fit the teacher model: '
            f'{len(missing)} weights are missing, e.g. {missing[:5]}')
    if keys.unexpected_keys:
        print_log(
            f'teacher checkpoint {path!r}: ignored '
            f'{len(keys.unexpected_keys)} unexpected keys, e.g. '
            f'{keys.unexpected_keys[:5]}',
            logger='current')
    non_finite = non_finite_tensors(teacher.state_dict())
    if non_finite:
        raise ValueError(
            f'teacher checkpoint {path!r} holds NaN or inf in '
            f'{len(non_finite)} tensors, e.g. {non_finite[:5]}: a teacher '
            'with non-finite weights gives non-finite losses')


class BaseDistiller(BaseModel):
    """A student trained against a frozen teacher.

    Args:
        student (dict): the student model (already resolved to a dict).
        teacher (dict): the teacher model.
        registry: the registry that builds both models.
        teacher_ckpt (str, optional): local path or URL of the teacher's
            weights; None keeps the teacher's own initialisation.
        teacher_autocast (str, optional): 'bf16' or 'fp16' to run the teacher
            under autocast; None/'fp32' runs it in full precision.
        warmup_iters (int): ramp the distillation losses linearly over this
            many iterations (0: no ramp).
        warmup_epochs (int): likewise over epochs (the official
            classification recipe ramps over 20 epochs).
        data_preprocessor (dict, optional): shared by student and teacher;
            defaults to the student's, typed ``default_data_preprocessor``
            when it names no type.
        init_cfg (dict, optional): see mmengine's BaseModule.
    """
    # A subclass's data preprocessor type when the config names none.
    default_data_preprocessor: Optional[str] = None

    def __init__(self,
                 student: dict,
                 teacher: dict,
                 registry,
                 teacher_ckpt: Optional[str] = None,
                 teacher_autocast: Optional[str] = None,
                 warmup_iters: int = 0,
                 warmup_epochs: int = 0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if teacher_autocast not in _AUTOCAST_DTYPES:
            raise ValueError("teacher_autocast must be None, 'fp32', 'bf16' "
                             f"or 'fp16', got {teacher_autocast!r}")
        if warmup_iters and warmup_epochs:
            raise ValueError('set warmup_iters or warmup_epochs, not both')
        if data_preprocessor is None:
            data_preprocessor = student.get('data_preprocessor')
        if self.default_data_preprocessor is not None:
            data_preprocessor = dict(data_preprocessor or {})
            data_preprocessor.setdefault('type',
                                         self.default_data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        # The teacher's weights come from teacher_ckpt (or stay random):
        # never fetch its ImageNet-pretrained backbone.
        teacher = dict(teacher, pretrained=None)
        if isinstance(teacher.get('backbone'), dict):
            teacher['backbone'] = dict(teacher['backbone'], init_cfg=None)
        self.student = registry.build(student)
        self.teacher = registry.build(teacher)
        self.teacher.init_weights()
        if teacher_ckpt is not None:
            load_teacher_checkpoint(self.teacher, teacher_ckpt)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.teacher_ckpt = teacher_ckpt
        self.teacher_dtype = _AUTOCAST_DTYPES[teacher_autocast]
        self.warmup_iters = warmup_iters
        self.warmup_epochs = warmup_epochs
        # Checkpoints hold the student only: the teacher comes from
        # teacher_ckpt, so saving it again would double every file.
        self._register_state_dict_hook(_drop_teacher_state)
        self.register_load_state_dict_post_hook(_ignore_missing_teacher)

    @staticmethod
    def check_class_counts(student_classes, teacher_classes) -> None:
        """Distilling logits needs one class set on both sides."""
        if student_classes != teacher_classes:
            raise ValueError(
                f'class count mismatch: the student predicts '
                f'{student_classes} classes, the teacher {teacher_classes}')

    @staticmethod
    def build_losses(cfgs: Dict[str, dict]) -> nn.ModuleDict:
        """Build distillation losses from the mmseg scope, where gdkd_seg
        registers them, whatever the caller's default scope."""
        from mmseg.registry import MODELS
        with DefaultScope.overwrite_default_scope('mmseg'):
            return nn.ModuleDict(
                {name: MODELS.build(cfg)
                 for name, cfg in cfgs.items()})

    def init_weights(self) -> None:
        """Initialise the student only; the teacher is already loaded."""
        self.student.init_weights()

    def train(self, mode: bool = True) -> 'BaseDistiller':
        super().train(mode)
        self.teacher.eval()
        return self

    @contextmanager
    def teacher_context(self, device: torch.device):
        """``no_grad`` plus the configured autocast for teacher forwards."""
        autocast = nullcontext() if self.teacher_dtype is None else \
            torch.autocast(device_type=device.type, dtype=self.teacher_dtype)
        with torch.no_grad(), autocast:
            yield

    def predict(self, inputs: torch.Tensor, data_samples=None):
        """The student's predictions, as the plain student model gives."""
        return self.student.predict(inputs, data_samples)

    def forward(self,
                inputs: torch.Tensor,
                data_samples=None,
                mode: str = 'tensor'):
        """mmengine's modes: 'loss' (subclasses define ``loss``), and
        'predict' / 'tensor', which run the student alone."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.student(inputs, data_samples, mode='tensor')
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, '
                           'predict and tensor mode')

    def loss_warmup_factor(self) -> float:
        """Linear ramp of the distillation weight in [0, 1]."""
        if not (self.warmup_iters or self.warmup_epochs):
            return 1.0
        hub = MessageHub.get_current_instance()
        if self.warmup_iters:
            return min(1.0, (hub.get_info('iter', 0) + 1) / self.warmup_iters)
        return min(1.0, (hub.get_info('epoch', 0) + 1) / self.warmup_epochs)


def _drop_teacher_state(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + 'teacher.')]:
        del state_dict[key]
    return state_dict


def _ignore_missing_teacher(module, incompatible_keys):
    missing = incompatible_keys.missing_keys
    missing[:] = [
        k for k in missing
        if not (k.startswith('teacher.') or '.teacher.' in k)
    ]


__all__ = ['BaseDistiller', 'resolve_model_cfg', 'load_teacher_checkpoint']
