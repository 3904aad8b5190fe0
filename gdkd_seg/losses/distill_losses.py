"""Registered pixel-wise distillation losses (thin wrappers of ``functional``).

Each loss is called as ``loss(student_logits, teacher_logits[, gt_seg])``.

* Logits are ``(N, C)`` rows or ``(B, C, H, W)`` maps; maps are flattened to
  per-pixel rows ``(B * H * W, C)``.
* If the spatial sizes differ, the *teacher* map is bilinearly resized to the
  student's grid (``align_corners=False``).
* ``gt_seg`` is a ``(B, H', W')`` or ``(B, 1, H', W')`` label map at any
  resolution (or ``(N,)`` labels for rows). It is resized to the logit grid by
  nearest neighbour, and pixels equal to ``ignore_index`` contribute nothing.
  A label that is neither ``ignore_index`` nor a class raises ValueError.
* ``ignore_index=None`` masks nothing: every pixel counts, void ones
  included, as the official segmentation GDKD and KD average by default
  (there ``gt_seg`` is not read; DKD still reads its classes).
* The result is the mean over valid rows of the per-row loss (which already
  carries ``T**2``), times ``loss_weight``. An all-ignored or empty batch
  gives 0 with a zero gradient. A non-finite logit in a valid row gives a
  NaN loss. The teacher never receives gradient.
* With ``use_fused=True`` (default) ``'mean'`` and ``'sum'`` run the fused
  loss-and-gradient path (``fused.py``: a Triton kernel on CUDA when triton is
  installed, chunked torch otherwise), equal to the plain path to float32
  rounding; ``reduction='none'`` and ``use_fused=False`` use the plain path
  (``functional.plain_loss``).

Defaults are the official segmentation settings (``docs/method.md`` lists
them with their sources); each class below only declares its
:class:`~.partition.PartitionSpec`.

Example config (mmseg scope)::

    distill_losses = dict(
        loss_gdkd=dict(type='GDKDLoss', k=3, temperature=1.0,
                       w0=1.0, w1=1.0, w2=2.0, loss_weight=1.0))
"""
from typing import Optional, Sequence, Union

import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from . import functional as F
from . import partition
from .fused import fused_partitioned_kl
from .partition import AdaptiveCut, PartitionSpec


class _DistillLoss(nn.Module):
    """Shared call contract; subclasses only declare ``self.spec``."""

    spec: PartitionSpec

    def __init__(self,
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 reduction: str = 'mean',
                 loss_name: str = 'loss_kd',
                 use_fused: bool = True) -> None:
        super().__init__()
        partition.check_weight('loss_weight', loss_weight)
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError("reduction must be 'mean', 'sum' or 'none', "
                             f'got {reduction!r}')
        if not loss_name.startswith('loss_'):
            raise ValueError('loss_name must start with "loss_" so mmengine '
                             f'backpropagates it, got {loss_name!r}')
        self.loss_weight = float(loss_weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self._loss_name = loss_name
        self.use_fused = use_fused

    @property
    def loss_name(self) -> str:
        """Name of the loss item in the loss dict."""
        return self._loss_name

    @property
    def temperature(self) -> float:
        return self.spec.temperature

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                gt_seg: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            student_logits (Tensor): ``(N, C)`` or ``(B, C, H, W)``.
            teacher_logits (Tensor): same layout; spatial size may differ.
            gt_seg (Tensor, optional): labels for ignore masking (and the
                DKD partition), at any resolution.

        Returns:
            Tensor: scalar for ``'mean'``/``'sum'``, ``(rows,)`` for
            ``'none'``; float32 (float64 for float64 inputs).
        """
        teacher_logits = F.align_teacher(student_logits, teacher_logits)
        labels = None
        if self.spec.needs_labels and gt_seg is None:
            raise ValueError(f'{type(self).__name__} partitions by the ground '
                             'truth: call it with gt_seg')
        if gt_seg is not None and (self.spec.needs_labels
                                   or self.ignore_index is not None):
            labels = F.labels_to_rows(gt_seg, student_logits)
        if self.use_fused and self.reduction != 'none':
            return fused_partitioned_kl(
                student_logits, teacher_logits, self.spec, labels,
                self.ignore_index, self.loss_weight, self.reduction)
        return self.loss_weight * F.plain_loss(
            student_logits, teacher_logits, self.spec, labels,
            self.ignore_index, self.reduction)


@MODELS.register_module()
class KDLoss(_DistillLoss):
    """Classic KD: ``T^2 KL(softmax(t/T) || softmax(s/T))`` per pixel.

    Hinton et al., "Distilling the Knowledge in a Neural Network", 2015.

    Args:
        temperature (float): T. Default 1.0 (pixel-wise KD in segmentation).
        loss_weight (float): Multiplier of the loss, >= 0. Default 1.0.
        ignore_index (int, optional): Label of pixels to skip. Default 255;
            None counts every pixel (the official code's averaging).
        reduction (str): 'mean' over valid rows, 'sum' or 'none'.
        loss_name (str): Key in the loss dict. Default 'loss_kd'.
        use_fused (bool): Fused loss-and-gradient path for 'mean'/'sum'.
            Default True.
    """

    def __init__(self, temperature: float = 1.0, loss_name='loss_kd',
                 **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        self.spec = partition.kd(temperature=temperature)


@MODELS.register_module()
class DKDLoss(_DistillLoss):
    """DKD, partitioned by the ground-truth class (needs ``gt_seg``).

    Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022:
    ``T^2 [alpha * TCKD + beta * NCKD]`` with TCKD the KL of the binary
    (target, non-target) masses and NCKD the KL among non-target classes.
    The defaults are the official segmentation DKD's (ZaberKo/seg-gdkd);
    the DKD paper's CIFAR-100 setting is ``beta=8, temperature=4``.

    Args:
        alpha (float): TCKD weight. Default 1.0.
        beta (float): NCKD weight. Default 2.0.
        temperature (float): T. Default 1.0.
        loss_weight, ignore_index, reduction: as in :class:`KDLoss`.
        loss_name (str): Default 'loss_dkd'.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 2.0,
                 temperature: float = 1.0, loss_name='loss_dkd',
                 **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        self.spec = partition.dkd(alpha=alpha, beta=beta,
                                  temperature=temperature)


@MODELS.register_module()
class GDKDLoss(_DistillLoss):
    """GDKD: the teacher's top-k classes vs the rest, no label needed.

    Zheng & Cheng, "Rethinking Decoupled Knowledge Distillation: A Predictive
    Distribution Perspective", arXiv 2512.04625:
    ``T^2 [w0 KL(Q||P) + w1 KL(q^top||p^top) + w2 KL(q^rest||p^rest)]``.
    ``gt_seg`` is only used for ignore masking. Ties at the k-th teacher
    logit go to the lowest class index.

    ``k`` may be a tuple of cut points of the teacher's ranking
    (``partition.py``, ``docs/method.md``): ``k=(1, 4)`` is top-1 /
    top-2..4 / rest (GDKD3), ``k=(1, 3, 6)`` top-1 / top-2..3 / top-4..6 /
    rest, with ``w1`` on every top group and ``w2`` on the rest unless
    ``leaf_weights`` gives one weight per group::

        dict(type='GDKDLoss', k=(1, 3, 6), leaf_weights=(1., 1., 1., 2.))

    ``k='adaptive'`` chooses k per pixel: the smallest
    top-k holding ``adaptive_mass`` of the teacher's probability (at
    temperature T), at most ``max_k`` (see ``functional.adaptive_k``)::

        dict(type='GDKDLoss', k='adaptive', adaptive_mass=0.9, max_k=5)

    Args:
        k (int | tuple[int] | str): Size of the top group, cut points, or
            'adaptive'. Default 3 (official seg setting).
        adaptive_mass (float): tau in [0, 1] for ``k='adaptive'``.
            Default 0.9.
        max_k (int, optional): Cap on the adaptive k. Default None (C).
        temperature (float): T. Default 1.0.
        w0, w1, w2 (float): Group, top and rest weights. Defaults 1, 1, 2.
        leaf_weights (Sequence[float], optional): one leaf weight per group
            instead of ``w1``/``w2``.
        loss_weight, ignore_index, reduction: as in :class:`KDLoss`.
        loss_name (str): Default 'loss_gdkd'.
    """

    def __init__(self, k: Union[int, Sequence[int], str] = 3,
                 temperature: float = 1.0,
                 w0: float = 1.0, w1: float = 1.0, w2: float = 2.0,
                 adaptive_mass: float = 0.9, max_k: Optional[int] = None,
                 leaf_weights: Optional[Sequence[float]] = None,
                 loss_name='loss_gdkd', **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        if k == 'adaptive':
            k = AdaptiveCut(adaptive_mass, max_k)
        elif isinstance(k, str):
            raise ValueError(f"k must be an int >= 1, a tuple of cuts or "
                             f"'adaptive', got {k!r}")
        self.spec = partition.gdkd(k=k, w0=w0, w1=w1, w2=w2,
                                   temperature=temperature,
                                   leaf_weights=leaf_weights)


@MODELS.register_module()
class GDKD3Loss(_DistillLoss):
    """GDKD3: top-1 / top-2..k / rest (the paper's variant for transformer
    teachers), i.e. ``GDKDLoss(k=(1, k))``. ``w0`` weights the 3-way group
    KL, ``w1`` the top-2..k leaf and ``w2`` the rest leaf.

    Args:
        k (int): end of the middle group, >= 2. Default 4 (the official
            GDKD3's; its other defaults are the segmentation GDKD's).
        temperature, w0, w1, w2: as in :class:`GDKDLoss`.
        loss_weight, ignore_index, reduction: as in :class:`KDLoss`.
        loss_name (str): Default 'loss_gdkd3'.
    """

    def __init__(self, k: int = 4, temperature: float = 1.0,
                 w0: float = 1.0, w1: float = 1.0, w2: float = 2.0,
                 loss_name='loss_gdkd3', **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        self.spec = partition.gdkd3(k=k, w0=w0, w1=w1, w2=w2,
                                    temperature=temperature)
