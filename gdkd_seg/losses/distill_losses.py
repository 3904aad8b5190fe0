"""Registered pixel-wise distillation losses (thin wrappers of ``functional``
and, for DIST, ``relation``).

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
them with their sources); each KL loss below only declares its
:class:`~.partition.PartitionSpec`. :class:`DISTLoss` is the correlation
loss DIST (``relation.py``).

The official options (``docs/method.md``), off by default, where a loss
then runs exactly as without them:

* ``ignore_incorrect`` (every loss): only pixels whose label is the
  teacher's arg-max count; the others become ignored rows (needs
  ``gt_seg``).
* ``intra_weight``, ``per_image_intra`` (KL losses): add DIST's
  intra-class term, the official ``*-dist`` methods.
* ``kl_type`` (KL losses): ``'forward'``, ``'reverse'`` or ``'both'``
  within-group KLs (the group term stays forward); the Triton kernels take
  ``'forward'`` only, the fused torch path every one.
* ``entropy_weight`` (KL losses): subtract the weighted mean entropy of the
  student's softened distribution.
* ``standardize`` (every loss): logit standardisation (``standardize.py``).
  ``'global'`` z-scores each row's student and teacher logits before
  everything else (the official LSKD; both paths then run on the
  standardised logits); ``'both'``/``'other'`` (GDKD, GDKD3) z-score within
  the groups for the within-group KLs and run the plain path (the fused
  paths compute every group from one set of logits).

Example config (mmseg scope)::

    distill_losses = dict(
        loss_gdkd=dict(type='GDKDLoss', k=3, temperature=1.0,
                       w0=1.0, w1=1.0, w2=2.0, loss_weight=1.0))
"""
import numbers
from typing import Optional, Sequence, Union

import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from . import functional
from . import partition, relation
from .fused import fused_partitioned_kl
from .partition import AdaptiveCut, PartitionSpec
from .standardize import GROUP_MODES, MODES, check_mode, standardize


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f'{name} must be True or False, got {value!r}')
    return value


def _check_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name} must be a real number, got {value!r}')
    partition.check_finite(name, value)
    return float(value)


def _check_weight(name: str, value) -> float:
    value = _check_number(name, value)
    partition.check_weight(name, value)
    return value


class _DistillLoss(nn.Module):
    """Shared call contract: the teacher on the student's grid, the labels
    on the logits' rows, the rows that count; subclasses compute
    :meth:`_loss`."""

    def __init__(self,
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 reduction: str = 'mean',
                 loss_name: str = 'loss_kd',
                 ignore_incorrect: bool = False,
                 standardize: Optional[str] = None) -> None:
        super().__init__()
        partition.check_weight('loss_weight', loss_weight)
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError("reduction must be 'mean', 'sum' or 'none', "
                             f'got {reduction!r}')
        if ignore_index is not None and (isinstance(ignore_index, bool) or
                                         not isinstance(ignore_index, int)):
            raise TypeError('ignore_index must be an int or None, got '
                            f'{ignore_index!r}')
        if not isinstance(loss_name, str):
            raise TypeError(f'loss_name must be a str, got {loss_name!r}')
        if not loss_name.startswith('loss_'):
            raise ValueError('loss_name must start with "loss_" so mmengine '
                             f'backpropagates it, got {loss_name!r}')
        self.loss_weight = float(loss_weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self._loss_name = loss_name
        self.ignore_incorrect = _check_bool('ignore_incorrect',
                                            ignore_incorrect)
        self.standardize = check_mode(standardize, self.standardize_modes)

    @property
    def loss_name(self) -> str:
        """Name of the loss item in the loss dict."""
        return self._loss_name

    needs_labels = False  # whether the loss itself reads the classes
    standardize_modes = MODES[:2]  # the ``standardize`` values it takes

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                gt_seg: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            student_logits (Tensor): ``(N, C)`` or ``(B, C, H, W)``.
            teacher_logits (Tensor): same layout; spatial size may differ.
            gt_seg (Tensor, optional): labels for ignore masking (and the
                DKD partition, and ``ignore_incorrect``), at any resolution.

        Returns:
            Tensor: scalar for ``'mean'``/``'sum'``, ``(rows,)`` for
            ``'none'``; float32 (float64 for float64 inputs).
        """
        teacher_logits = functional.align_teacher(student_logits,
                                                  teacher_logits)
        if self.standardize == 'global':
            student_logits = standardize(student_logits)
            teacher_logits = standardize(teacher_logits)
        reads_labels = self.needs_labels or self.ignore_incorrect
        if reads_labels and gt_seg is None:
            reason = 'partitions by' if self.needs_labels else \
                'with ignore_incorrect=True compares the teacher with'
            raise ValueError(f'{type(self).__name__} {reason} the ground '
                             'truth: call it with gt_seg')
        labels, ignore_index = None, self.ignore_index
        if gt_seg is not None and (reads_labels or ignore_index is not None):
            labels = functional.labels_to_rows(gt_seg, student_logits)
            if self.ignore_incorrect:
                labels, ignore_index = functional.keep_teacher_correct(
                    labels, teacher_logits, ignore_index)
        return self._loss(student_logits, teacher_logits, labels,
                          ignore_index)

    def _loss(self, student: Tensor, teacher: Tensor,
              labels: Optional[Tensor],
              ignore_index: Optional[int]) -> Tensor:
        raise NotImplementedError


class _PartitionedKLLoss(_DistillLoss):
    """A partitioned KL (subclasses declare ``self.spec``), with the
    official options that add to it: DIST's intra-class term and an entropy
    bonus."""

    spec: PartitionSpec

    def __init__(self,
                 intra_weight: float = 0.0,
                 per_image_intra: bool = False,
                 entropy_weight: float = 0.0,
                 kl_type: str = 'forward',
                 use_fused: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.intra_weight = _check_weight('intra_weight', intra_weight)
        self.per_image_intra = _check_bool('per_image_intra',
                                           per_image_intra)
        self.entropy_weight = _check_number('entropy_weight',
                                            entropy_weight)
        self.kl_type = kl_type  # checked by the spec
        if self.intra_weight and self.reduction == 'none':
            raise ValueError(
                "intra_weight > 0 needs reduction 'mean' or 'sum': the "
                'intra-class term is one number per class, not per pixel')
        self.use_fused = use_fused

    @property
    def needs_labels(self) -> bool:
        return self.spec.needs_labels

    @property
    def temperature(self) -> float:
        return self.spec.temperature

    def _loss(self, student, teacher, labels, ignore_index):
        per_group = self.standardize in GROUP_MODES
        if self.use_fused and self.reduction != 'none' and not per_group:
            loss = fused_partitioned_kl(student, teacher, self.spec, labels,
                                        ignore_index, self.loss_weight,
                                        self.reduction)
        else:
            loss = self.loss_weight * functional.plain_loss(
                student, teacher, self.spec, labels, ignore_index,
                self.reduction, self.standardize if per_group else None)
        if self.intra_weight:
            loss = loss + self.loss_weight * self.intra_weight * \
                relation.intra_loss(student, teacher, labels, ignore_index,
                                    self.temperature, self.per_image_intra,
                                    self.reduction)
        if self.entropy_weight:
            loss = loss - self.loss_weight * self.entropy_weight * \
                functional.entropy_loss(student, labels, ignore_index,
                                        self.temperature, self.reduction)
        return loss


@MODELS.register_module()
class KDLoss(_PartitionedKLLoss):
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
        ignore_incorrect (bool): only pixels the teacher gets right count.
            Default False.
        intra_weight (float): weight >= 0 of DIST's intra-class term.
            Default 0.0 (1.0 in the official ``*-dist`` methods).
        per_image_intra (bool): that term within each image. Default False.
        kl_type (str): 'forward', 'reverse' or 'both' within-group KLs.
            Default 'forward'.
        entropy_weight (float): weight of the subtracted mean entropy of
            ``softmax(s / T)``. Default 0.0.
        standardize (str, optional): None (default) or ``'global'``: each
            row's logits z-scored before the temperature (LSKD, Sun et al.,
            CVPR 2024; ``standardize.py``).
    """

    def __init__(self, temperature: float = 1.0, loss_name='loss_kd',
                 **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        self.spec = partition.kd(temperature=temperature,
                                 kl_type=self.kl_type)


@MODELS.register_module()
class DKDLoss(_PartitionedKLLoss):
    """DKD, partitioned by the ground-truth class (needs ``gt_seg``).

    Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022: the
    partitioned KL (``functional.partitioned_kl``) of the groups
    {target}, {non-target} with ``alpha`` as the group weight (TCKD) and
    ``beta`` as the non-target leaf weight (NCKD).
    The defaults are the official segmentation DKD's (ZaberKo/seg-gdkd);
    the DKD paper's CIFAR-100 setting is ``beta=8, temperature=4``.

    Args:
        alpha (float): TCKD weight. Default 1.0.
        beta (float): NCKD weight. Default 2.0.
        temperature (float): T. Default 1.0.
        loss_weight, ignore_index, reduction, use_fused and the options:
            as in :class:`KDLoss`.
        loss_name (str): Default 'loss_dkd'.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 2.0,
                 temperature: float = 1.0, loss_name='loss_dkd',
                 **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        self.spec = partition.dkd(alpha=alpha, beta=beta,
                                  temperature=temperature,
                                  kl_type=self.kl_type)


@MODELS.register_module()
class GDKDLoss(_PartitionedKLLoss):
    """GDKD: the teacher's top-k classes vs the rest, no label needed.

    Zheng & Cheng, "Rethinking Decoupled Knowledge Distillation: A Predictive
    Distribution Perspective", arXiv 2512.04625: the partitioned KL
    (``functional.partitioned_kl``) with ``w0`` as the group weight and
    ``w1``, ``w2`` as the top group's and the rest's leaf weights.
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
        standardize (str, optional): None, ``'global'`` (as in
            :class:`KDLoss`), or LS-GDKD's per-group ``'both'`` (every
            group's within-group KL on logits z-scored over that group) or
            ``'other'`` (the rest's only); the group KL keeps the raw
            logits. Default None.
        loss_weight, ignore_index, reduction, use_fused and the options:
            as in :class:`KDLoss`.
        loss_name (str): Default 'loss_gdkd'.
    """

    standardize_modes = MODES

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
                                   leaf_weights=leaf_weights,
                                   kl_type=self.kl_type)


@MODELS.register_module()
class GDKD3Loss(_PartitionedKLLoss):
    """GDKD3: top-1 / top-2..k / rest (the paper's variant for transformer
    teachers), i.e. ``GDKDLoss(k=(1, k))``. ``w0`` weights the 3-way group
    KL, ``w1`` the top-2..k leaf and ``w2`` the rest leaf.

    Args:
        k (int): end of the middle group, >= 2. Default 4 (the official
            GDKD3's; its other defaults are the segmentation GDKD's).
        temperature, w0, w1, w2, standardize: as in :class:`GDKDLoss`.
        loss_weight, ignore_index, reduction, use_fused and the options:
            as in :class:`KDLoss`.
        loss_name (str): Default 'loss_gdkd3'.
    """

    standardize_modes = MODES

    def __init__(self, k: int = 4, temperature: float = 1.0,
                 w0: float = 1.0, w1: float = 1.0, w2: float = 2.0,
                 loss_name='loss_gdkd3', **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        self.spec = partition.gdkd3(k=k, w0=w0, w1=w1, w2=w2,
                                    temperature=temperature,
                                    kl_type=self.kl_type)


@MODELS.register_module()
class DISTLoss(_DistillLoss):
    """DIST: ``beta * inter + gamma * intra`` of Pearson correlations.

    Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS
    2022; the math is in ``relation.py`` and ``docs/method.md``. Defaults are
    the official segmentation code's (ZaberKo/seg-gdkd,
    losses/distiller/dist.py, as hunto/DIST_KD's): ``beta = gamma = 1``,
    ``T = 1`` and no ``T**2`` factor (the official classification DIST
    multiplies both terms by ``T**2``: scale ``beta`` and ``gamma`` by
    ``T**2`` to match it).

    Args:
        temperature (float): T in :data:`.partition.TEMPERATURE_RANGE`, as
            for the KL losses. Default 1.0.
        beta (float): weight of the inter-class term. Default 1.0.
        gamma (float): weight of the intra-class term. Default 1.0.
        per_image_intra (bool): intra-class correlations within each image
            instead of across the batch. Default False.
        loss_weight, ignore_index, ignore_incorrect, standardize: as in
            :class:`KDLoss` (``ignore_index=None`` is the official
            all-pixel computation).
        reduction (str): 'mean' (each term averaged over its pixels or
            classes), 'sum', or 'none' (per pixel; only with ``gamma=0``).
        loss_name (str): Default 'loss_dist'.
    """

    def __init__(self, temperature: float = 1.0, beta: float = 1.0,
                 gamma: float = 1.0, per_image_intra: bool = False,
                 loss_name: str = 'loss_dist', **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        partition.check_temperature(temperature)
        self.temperature = float(temperature)
        self.beta = _check_weight('beta', beta)
        self.gamma = _check_weight('gamma', gamma)
        self.per_image_intra = _check_bool('per_image_intra',
                                           per_image_intra)
        if self.gamma and self.reduction == 'none':
            raise ValueError(
                "reduction='none' needs gamma=0: the intra-class term is "
                'one number per class, not per pixel')

    def _loss(self, student, teacher, labels, ignore_index):
        return self.loss_weight * relation.dist_loss(
            student, teacher, labels, ignore_index, self.temperature,
            self.beta, self.gamma, self.per_image_intra, self.reduction)
