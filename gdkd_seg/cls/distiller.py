"""Logit distillation for any mmpretrain ImageClassifier teacher/student pair.

Registered in mmpretrain's MODELS on import of :mod:`gdkd_seg.cls` (it needs
mmpretrain, which segmentation users may not have).
"""
from typing import Dict, List, Optional

import torch
from mmpretrain.models.heads import ArcFaceClsHead, ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from ..distillers.base import BaseDistiller, ModelSpec, resolve_model_cfg

#: classification has no ignore label: the losses' default (255, mmseg's)
#: would silently drop class 255 of ImageNet.
NO_IGNORE = -1


@MODELS.register_module()
class ClsDistiller(BaseDistiller):
    """Distil a classifier's logits into another's.

    The student trains with its head's own loss (logged as ``loss_cls``;
    ``accuracy_top-*`` too if the head has ``cal_acc``) plus the
    distillation loss on the two
    heads' logits (logged under the loss's ``loss_name``, e.g.
    ``loss_gdkd``), times the warmup factor. Prediction, validation and test
    run the student alone.

    Example (the CIFAR-100 recipe; see ``configs/cls/``)::

        model = dict(
            type='ClsDistiller',
            student=dict(type='ImageClassifier', ...),
            teacher='configs/cls/baselines/resnet32x4_1xb64_cifar100.py',
            teacher_ckpt='work_dirs/resnet32x4_1xb64_cifar100/epoch_240.pth',
            distill_losses=dict(head=dict(
                type='GDKDLoss', k=5, temperature=4, w0=1, w1=2, w2=8)),
            warmup_epochs=20)

    The student's head runs once per step; its logits feed its own loss
    (``ClsHead._get_loss``, the step of ``ClsHead.loss`` after the forward:
    mmpretrain's counterpart of mmseg's ``loss_by_feat``) and the
    distillation loss. So the student's head must be a single-label
    ``ClsHead`` whose loss is computed that way (not ``ArcFaceClsHead``,
    whose forward takes the labels).

    Args:
        student (str | dict): an mmpretrain ``ImageClassifier`` dict or a
            config path whose ``model`` is taken.
        teacher (str | dict): likewise.
        distill_losses (dict): ``dict(head=loss_cfg)``, a loss registered in
            mmseg's MODELS by gdkd_seg (KDLoss, DKDLoss, GDKDLoss, ...).
            Labels are passed to it; ``ignore_index`` defaults to -1 (none).
        teacher_ckpt, teacher_autocast, warmup_iters, warmup_epochs,
            init_cfg: see :class:`BaseDistiller`.
        data_preprocessor (dict, optional): defaults to the student's, and
            to a ``ClsDataPreprocessor`` (the Runner passes the config's
            top-level ``data_preprocessor`` here).
    """
    default_data_preprocessor = 'ClsDataPreprocessor'

    def __init__(self,
                 student: ModelSpec,
                 teacher: ModelSpec,
                 distill_losses: Dict[str, dict],
                 teacher_ckpt: Optional[str] = None,
                 teacher_autocast: Optional[str] = None,
                 warmup_iters: int = 0,
                 warmup_epochs: int = 0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if set(distill_losses) != {'head'}:
            raise KeyError('distill_losses must be dict(head=loss_cfg) (the '
                           f'classifier head\'s logits), got '
                           f'{sorted(distill_losses)}')
        super().__init__(
            resolve_model_cfg(student, 'student'),
            resolve_model_cfg(teacher, 'teacher'),
            registry=MODELS,
            teacher_ckpt=teacher_ckpt,
            teacher_autocast=teacher_autocast,
            warmup_iters=warmup_iters,
            warmup_epochs=warmup_epochs,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        for role, model in (('student', self.student), ('teacher',
                                                        self.teacher)):
            if getattr(model, 'head', None) is None:
                raise ValueError(f'the {role} has no classification head')
        head = self.student.head
        if not isinstance(head, ClsHead) or isinstance(head, ArcFaceClsHead):
            raise TypeError(
                f'the student head is a {type(head).__name__}; ClsDistiller '
                'needs a single-label ClsHead whose loss is ClsHead._get_loss '
                'on its forward (e.g. LinearClsHead)')
        self.check_class_counts(
            getattr(self.student.head, 'num_classes', None),
            getattr(self.teacher.head, 'num_classes', None))
        self.distill_losses = self.build_losses({
            name:
            dict(cfg, ignore_index=cfg.get('ignore_index', NO_IGNORE))
            for name, cfg in distill_losses.items()
        })

    def loss(self, inputs: Tensor,
             data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """The student's head losses plus the distillation loss."""
        student_logits = self.student.head(self.student.extract_feat(inputs))
        losses = self.student.head._get_loss(student_logits, data_samples)
        # mmengine logs the total as 'loss'; keep the head's own term apart.
        losses['loss_cls'] = losses.pop('loss')
        with self.teacher_context(inputs.device):
            teacher_logits = self.teacher.head(
                self.teacher.extract_feat(inputs))
        labels = torch.cat([s.gt_label for s in data_samples])
        loss_fn = self.distill_losses['head']
        losses[loss_fn.loss_name] = self.loss_warmup_factor() * loss_fn(
            student_logits, teacher_logits.float(), labels)
        return losses
