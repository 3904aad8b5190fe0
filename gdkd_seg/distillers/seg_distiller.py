"""Logit distillation for any mmseg teacher/student pair."""
from typing import Dict, List, Optional

import torch
from mmseg.registry import MODELS
from mmseg.utils import add_prefix
from torch import Tensor

from .base import BaseDistiller, ModelSpec, resolve_model_cfg

# Which head's logits a loss reads, and the prefix mmseg logs that head under.
HEADS = {'decode_head': 'decode', 'auxiliary_head': 'aux'}


@MODELS.register_module()
class SegDistiller(BaseDistiller):
    """Distil a segmentor's head logits into another's.

    The student trains with its own mmseg losses (``decode.loss_ce``, ...)
    plus one distillation loss per head named in ``distill_losses``, computed
    on the heads' logits at logit resolution (the teacher's map is resized to
    the student's grid if they differ) with the ground truth masking ignore
    pixels. Prediction, validation and test run the student alone.

    Example::

        model = dict(
            type='SegDistiller',
            student='mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
            teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
            teacher_ckpt='https://download.openmmlab.com/...pth',
            distill_losses=dict(
                decode_head=dict(type='GDKDLoss', k=3, w0=1, w1=1, w2=2),
                auxiliary_head=dict(type='GDKDLoss', loss_weight=0.4)))

    Args:
        student (str | dict): an mmseg segmentor dict or a config path whose
            ``model`` is taken.
        teacher (str | dict): likewise.
        distill_losses (dict): head name (``'decode_head'`` or
            ``'auxiliary_head'``) -> loss config.
        teacher_ckpt, teacher_autocast, warmup_iters, data_preprocessor,
            init_cfg: see :class:`BaseDistiller`.
    """

    def __init__(self,
                 student: ModelSpec,
                 teacher: ModelSpec,
                 distill_losses: Dict[str, dict],
                 teacher_ckpt: Optional[str] = None,
                 teacher_autocast: Optional[str] = None,
                 warmup_iters: int = 0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        unknown = set(distill_losses) - set(HEADS)
        if unknown:
            raise KeyError(f'distill_losses keys must be head names among '
                           f'{sorted(HEADS)}, got {sorted(unknown)}')
        super().__init__(
            resolve_model_cfg(student, 'student'),
            resolve_model_cfg(teacher, 'teacher'),
            registry=MODELS,
            teacher_ckpt=teacher_ckpt,
            teacher_autocast=teacher_autocast,
            warmup_iters=warmup_iters,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        for head in distill_losses:
            for role, model in (('student', self.student),
                                ('teacher', self.teacher)):
                if getattr(model, f'with_{head}', False) is False:
                    raise ValueError(f'distill_losses names {head!r} but the '
                                     f'{role} has no {head}')
        self.check_class_counts(self.student.decode_head.num_classes,
                                self.teacher.decode_head.num_classes)
        self.distill_losses = self.build_losses(distill_losses)

    @staticmethod
    def head_logits(model, head: str, feats) -> Tensor:
        """The logits a distillation loss on ``head`` reads.

        Args:
            model: an mmseg segmentor (a distiller's student or teacher).
            head (str): ``'decode_head'`` or ``'auxiliary_head'``; of several
                auxiliary heads, the first.
            feats: ``model.extract_feat(inputs)``.

        Returns:
            Tensor: ``(B, C, h, w)`` logits at the head's own resolution.
        """
        module = getattr(model, head)
        if isinstance(module, torch.nn.ModuleList):  # several aux heads
            module = module[0]
        return module(feats)

    def loss(self, inputs: Tensor, data_samples: List) -> Dict[str, Tensor]:
        """Student task losses plus distillation losses."""
        feats = self.student.extract_feat(inputs)
        student_logits = {}
        losses = {}
        for head, prefix in HEADS.items():
            if not getattr(self.student, f'with_{head}'):
                continue
            logits = self.head_logits(self.student, head, feats)
            student_logits[head] = logits
            module = getattr(self.student, head)
            if isinstance(module, torch.nn.ModuleList):
                for idx, aux in enumerate(module):
                    head_logits = logits if idx == 0 else aux(feats)
                    losses.update(add_prefix(
                        aux.loss_by_feat(head_logits, data_samples),
                        f'{prefix}_{idx}'))
            else:
                losses.update(add_prefix(
                    module.loss_by_feat(logits, data_samples), prefix))

        with self.teacher_context(inputs.device):
            teacher_feats = self.teacher.extract_feat(inputs)
            teacher_logits = {
                head: self.head_logits(self.teacher, head, teacher_feats)
                for head in self.distill_losses
            }
        gt = torch.stack([s.gt_sem_seg.data for s in data_samples])
        weight = self.loss_warmup_factor()
        for head, loss_fn in self.distill_losses.items():
            name = f'{HEADS[head]}.{loss_fn.loss_name}'
            losses[name] = weight * loss_fn(student_logits[head],
                                            teacher_logits[head].float(), gt)
        return losses
