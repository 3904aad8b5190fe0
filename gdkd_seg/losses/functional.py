"""The distillation loss family as pure functions (no OpenMMLab imports).

Every member is a *partitioned KL divergence*. For one row (a sample, or a pixel
of a flattened ``(B, C, H, W)`` map) with student logits ``s`` and teacher logits
``t``, ``p = softmax(s / T)`` and ``q = softmax(t / T)``, the classes are split
into groups ``U_1 .. U_G`` and

    L_row = T^2 * [ w_bin * KL(Q || P) + sum_g w_g * KL(q^g || p^g) ]

where ``P_g = sum_{i in U_g} p_i`` (likewise ``Q_g``) and ``p^g_i = p_i / P_g``
is the distribution inside group ``g``. For any partition the chain rule gives
``KL(q || p) = KL(Q || P) + sum_g Q_g KL(q^g || p^g)``.

* KD (Hinton et al. 2015): one group, ``L = T^2 KL(q || p)``.
* DKD (Zhao et al. 2022): ``{ground truth}`` vs the rest; ``w_bin = alpha``
  (TCKD) and ``beta`` on the non-target group (NCKD).
* GDKD (Zheng & Cheng, arXiv 2512.04625): the teacher's top-k classes vs the
  rest, weights ``w0`` (binary), ``w1`` (top-k), ``w2`` (rest).
* GDKD3: top-1, top-2..k and the rest; ``w0`` on the 3-way group KL, ``w1`` and
  ``w2`` on the top-2..k and rest leaves (the top-1 leaf is a single class).

Everything is computed in log space: group masses are log-sum-exps and
within-group log-probabilities are log-softmaxes over the group, each taken
relative to the group's own max logit. No logit is masked by subtracting a large constant and no mass is
clamped, so the result is exact for any finite logits, including groups whose
mass underflows to zero in floating point (the official code returns NaN or a
KL over the wrong support there; REFERENCE.md section 1, defects 1-2).
Inputs of any floating dtype are computed in float32 (or float64 if given).

Ties at the k-th teacher logit are broken towards the lowest class index
(a stable descending sort), so the partition is deterministic on every device.

GDKD's k may also be chosen per row (:func:`adaptive_k`): the smallest top-k
of the teacher holding a share ``tau`` of its probability mass, one answer to
the open question of choosing k per pixel (a confident pixel gets k=1, an
ambiguous boundary pixel a larger top group).
"""
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .partition import GroupRule, PartitionSpec

__all__ = [
    'flatten_logits', 'align_teacher', 'labels_to_rows', 'check_labels',
    'topk_group_index', 'adaptive_k', 'group_index', 'partitioned_kl',
    'row_losses', 'reduce_rows', 'plain_loss'
]


def flatten_logits(logits: Tensor) -> Tensor:
    """Turn ``(N, C)`` rows or ``(B, C, H, W)`` maps into ``(rows, C)``.

    Args:
        logits (Tensor): ``(N, C)`` or ``(B, C, *spatial)``.

    Returns:
        Tensor: ``(N, C)``, or ``(B * H * W, C)`` in ``b, h, w`` order.
    """
    if logits.dim() == 2:
        return logits
    assert logits.dim() >= 3, (
        f'expected (N, C) or (B, C, H, W) logits, got shape {tuple(logits.shape)}')
    return logits.flatten(2).transpose(1, 2).reshape(-1, logits.shape[1])


def align_teacher(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Check class counts and bring the teacher's map to the student's grid.

    The *teacher* map is resized (bilinear, ``align_corners=False``) to the
    student's spatial size, so the student's gradient path is untouched.

    Args:
        student_logits (Tensor): ``(N, C)`` or ``(B, C, H, W)``.
        teacher_logits (Tensor): same layout, any spatial size.

    Returns:
        Tensor: teacher logits with the student's shape, detached.
    """
    if student_logits.dim() != teacher_logits.dim():
        raise ValueError(
            'student and teacher logits must have the same layout, got shapes '
            f'{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}')
    if student_logits.shape[1] != teacher_logits.shape[1]:
        raise ValueError(
            f'class count mismatch: student logits have '
            f'{student_logits.shape[1]} classes, teacher logits have '
            f'{teacher_logits.shape[1]}')
    if student_logits.shape[0] != teacher_logits.shape[0]:
        raise ValueError(
            f'batch size mismatch: student {student_logits.shape[0]}, '
            f'teacher {teacher_logits.shape[0]}')
    teacher_logits = teacher_logits.detach()
    if student_logits.dim() > 2 and \
            student_logits.shape[2:] != teacher_logits.shape[2:]:
        teacher_logits = F.interpolate(
            teacher_logits.float(),
            size=student_logits.shape[2:],
            mode='bilinear',
            align_corners=False)
    return teacher_logits


def labels_to_rows(labels: Tensor, logits: Tensor) -> Tensor:
    """Resize a label map to the logits' grid (nearest) and flatten it.

    Args:
        labels (Tensor): ``(N,)`` for row logits; ``(B, H', W')`` or
            ``(B, 1, H', W')`` at any resolution for map logits.
        logits (Tensor): the ``(N, C)`` or ``(B, C, H, W)`` logits.

    Returns:
        Tensor: ``(rows,)`` int64 labels aligned with ``flatten_logits``.
    """
    if logits.dim() == 2:
        if labels.shape != logits.shape[:1]:
            raise ValueError(f'labels for (N, C) logits must be (N,), got '
                             f'{tuple(labels.shape)} for {tuple(logits.shape)}')
        return labels.long()
    if labels.dim() == logits.dim():
        if labels.shape[1] != 1:
            raise ValueError('label maps must be (B, H, W) or (B, 1, H, W), '
                             f'got {tuple(labels.shape)}')
        labels = labels[:, 0]
    if labels.dim() != logits.dim() - 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f'label map of shape {tuple(labels.shape)} does not fit logits of '
            f'shape {tuple(logits.shape)}')
    if labels.shape[1:] != logits.shape[2:]:
        # 'nearest' on float keeps label ids exact (they are < 2**24).
        labels = F.interpolate(
            labels[:, None].float(), size=logits.shape[2:],
            mode='nearest')[:, 0]
    return labels.reshape(-1).long()


def topk_group_index(teacher_rows: Tensor, k: Union[int, Tensor]) -> Tensor:
    """Rank of each class in the teacher's order, ties to the lowest index.

    Args:
        teacher_rows (Tensor): ``(N, C)`` teacher logits.
        k (int | Tensor): the partition size the caller will use, one for all
            rows or ``(N,)`` per row; checked to be in ``[1, C]``.

    Returns:
        Tensor: ``(N, C)`` int64 rank (0 = the teacher's top class); the top
        group of row ``n`` is ``rank < k[n]``.
    """
    num_classes = teacher_rows.shape[1]
    if torch.is_tensor(k):
        if k.shape != teacher_rows.shape[:1]:
            raise ValueError(f'a per-row k must have shape '
                             f'({len(teacher_rows)},), got {tuple(k.shape)}')
        low, high = (int(k.min()), int(k.max())) if k.numel() else (1, 1)
    else:
        low = high = k
    if not (1 <= low and high <= num_classes):
        raise ValueError(f'k must be in [1, {num_classes}] (the number of '
                         f'classes), got {k if low == high else k.tolist()}')
    order = torch.sort(
        teacher_rows, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(
        1, order,
        torch.arange(num_classes, device=order.device).expand_as(order))
    return ranks


def adaptive_k(teacher_rows: Tensor,
               mass: float,
               temperature: float = 1.0,
               max_k: Optional[int] = None) -> Tensor:
    """Per row, the smallest k whose teacher top-k holds ``mass`` of ``q``.

    ``k = min{k >= 1 : sum of the k largest q_i >= mass}`` with
    ``q = softmax(t / T)``, capped at ``max_k``. Evaluated in float64 as
    "the mass *outside* the top k is at most ``1 - mass``", summing the tail
    from the smallest probability up, so ``mass=1`` gives exactly the classes
    of nonzero float64 mass (all of them for finite logits within ~745 T of
    the row's max) and ``mass -> 0`` gives k=1. Which of several tied classes
    fills the top group is :func:`topk_group_index`'s business (lowest
    index); k does not depend on it.

    Args:
        teacher_rows (Tensor): ``(N, C)`` teacher logits.
        mass (float): the share ``tau`` in ``[0, 1]``.
        temperature (float): T of the distribution being partitioned.
        max_k (int, optional): upper bound on k (default C).

    Returns:
        Tensor: ``(N,)`` int64 k in ``[1, max_k]``.
    """
    num_classes = teacher_rows.shape[1]
    max_k = num_classes if max_k is None else max_k
    if not 0.0 <= mass <= 1.0:
        raise ValueError(f'mass must be in [0, 1], got {mass}')
    if not 1 <= max_k <= num_classes:
        raise ValueError(f'max_k must be in [1, {num_classes}] (the number '
                         f'of classes), got {max_k}')
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    logits = teacher_rows.detach().double()
    weights = ((logits - logits.amax(dim=1, keepdim=True)) /
               temperature).exp().sort(dim=1, descending=True).values
    # suffix[:, j]: unnormalised mass of ranks >= j, smallest terms first.
    suffix = weights.flip(1).cumsum(1).flip(1)
    tail = torch.cat([suffix[:, 1:], suffix[:, :1] * 0], dim=1)
    within = tail <= (1.0 - mass) * suffix[:, :1]
    # The tail only shrinks as k grows (and is 0 at k = C), so the first
    # True is the smallest k.
    k = within.long().argmax(dim=1) + 1
    return k.clamp(max=max_k)


def _group_log_softmax(logits: Tensor, in_group: Tensor,
                       temperature: float):
    """Log-softmax of ``logits / T`` inside one group, and the group's mass.

    The group's own max is subtracted *before* dividing by T, so logits that
    share a large offset (a spread of 1e4/T in a row) keep their small
    differences exactly in float32.

    Returns:
        tuple: ``(leaf, log_mass)``: ``(N, C)`` within-group log-probabilities
        (0 outside the group) and ``(N,)`` log of the group's softmax mass
        (``-inf`` for an empty group).
    """
    neg_inf = logits.new_tensor(float('-inf'))
    nonempty = in_group.any(dim=1)
    # Shifts are detached: the results are shift invariant, so the gradient
    # is exact while no gradient flows through max().
    row_max = logits.detach().amax(dim=1, keepdim=True)
    group_max = torch.where(in_group, logits.detach(), neg_inf).amax(
        dim=1, keepdim=True)
    group_max = torch.where(nonempty[:, None], group_max, row_max)
    scaled = torch.where(in_group, (logits - group_max) / temperature,
                         neg_inf)
    # An empty group's row is all -inf; give logsumexp zeros there instead so
    # its backward stays finite (the result is replaced below anyway).
    group_lse = torch.logsumexp(
        torch.where(nonempty[:, None], scaled, 0.), dim=1)
    row_lse = torch.logsumexp((logits - row_max) / temperature, dim=1)
    leaf = torch.where(in_group, scaled - group_lse[:, None], 0.)
    log_mass = (group_max[:, 0] - row_max[:, 0]) / temperature \
        + group_lse - row_lse
    return leaf, torch.where(nonempty, log_mass, neg_inf)


def partitioned_kl(student_rows: Tensor,
                   teacher_rows: Tensor,
                   groups: Tensor,
                   num_groups: int,
                   binary_weight: Union[float, Tensor],
                   group_weights: Union[Sequence[float], Tensor],
                   temperature: float = 1.0) -> Tensor:
    """Per-row partitioned KL(teacher || student), times ``T**2``.

    Args:
        student_rows (Tensor): ``(N, C)`` student logits.
        teacher_rows (Tensor): ``(N, C)`` teacher logits (not differentiated).
        groups (Tensor): ``(N, C)`` int group id of each class, in
            ``[0, num_groups)``.
        num_groups (int): G.
        binary_weight (float | Tensor): weight of ``KL(Q || P)``; a float or
            an ``(N,)`` tensor of per-row weights.
        group_weights (Sequence[float] | Tensor): ``(G,)`` or ``(N, G)``
            weights of the within-group KLs.
        temperature (float): T > 0.

    Returns:
        Tensor: ``(N,)`` float32 (float64 for float64 inputs) losses.
    """
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    dtype = torch.float64 if student_rows.dtype == torch.float64 \
        else torch.float32
    student_rows = student_rows.to(dtype)
    teacher_rows = teacher_rows.detach().to(dtype)
    group_weights = torch.as_tensor(
        group_weights, dtype=dtype, device=student_rows.device)
    if group_weights.dim() == 1:
        group_weights = group_weights.expand(student_rows.shape[0],
                                             num_groups)
    binary_weight = torch.as_tensor(
        binary_weight, dtype=dtype, device=student_rows.device)

    binary_kl = student_rows.new_zeros(student_rows.shape[0])
    leaf_loss = student_rows.new_zeros(student_rows.shape[0])
    for g in range(num_groups):
        in_g = groups == g
        leaf_p, log_pg = _group_log_softmax(student_rows, in_g, temperature)
        leaf_q, log_qg = _group_log_softmax(teacher_rows, in_g, temperature)
        # Q_g (log Q_g - log P_g), with 0 log 0 = 0 for an empty group.
        present = torch.isfinite(log_qg)
        binary_kl = binary_kl + torch.where(
            present,
            log_qg.exp() * (log_qg - torch.where(present, log_pg, 0.)), 0.)
        # Within-group KL from log-ratios: never divides two tiny masses, and
        # classes outside the group contribute exp(0) * (0 - 0) = 0.
        leaf_kl = (leaf_q.exp() * (leaf_q - leaf_p)).sum(dim=1)
        leaf_loss = leaf_loss + group_weights[:, g] * leaf_kl
    return (binary_weight * binary_kl + leaf_loss) * temperature**2


def reduce_rows(row_losses: Tensor,
                valid: Optional[Tensor] = None,
                reduction: str = 'mean') -> Tensor:
    """Reduce per-row losses over valid rows.

    ``'mean'`` divides by the number of valid rows; with none valid it returns
    0 with a zero (finite) gradient instead of 0/0.
    """
    if valid is not None:
        row_losses = torch.where(valid, row_losses, 0.)
    if reduction == 'none':
        return row_losses
    if reduction == 'sum':
        return row_losses.sum()
    if reduction == 'mean':
        count = row_losses.numel() if valid is None else valid.sum()
        return row_losses.sum() / max(int(count), 1)
    raise ValueError(
        f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def check_labels(labels: Tensor, num_classes: int,
                 ignore_index: Optional[int]) -> None:
    """Raise ValueError if a label is neither ``ignore_index`` nor a class.

    As ``torch.nn.functional.cross_entropy`` refuses out-of-range targets: a
    label of 100 (or -3) with 19 classes is a data error, never a valid
    pixel. Reads the labels on their device (a host sync on CUDA).
    """
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        bad &= labels != ignore_index
    if bool(bad.any()):
        values = torch.unique(labels[bad]).tolist()
        shown = ', '.join(str(v) for v in values[:10]) + \
            (', ...' if len(values) > 10 else '')
        raise ValueError(
            f'labels must be in [0, {num_classes}) (the number of classes) '
            f'or equal ignore_index={ignore_index}; got {int(bad.sum())} '
            f'pixels with other values: {shown}')


def group_index(spec: PartitionSpec, teacher_rows: Tensor,
                labels: Optional[Tensor] = None) -> Tensor:
    """Each class's group id per row, as ``spec`` defines the groups.

    Args:
        spec (PartitionSpec): the loss's partition.
        teacher_rows (Tensor): ``(N, C)`` teacher logits.
        labels (Tensor, optional): ``(N,)`` class ids (label partitions).

    Returns:
        Tensor: ``(N, C)`` int64 group ids in ``[0, spec.num_groups)``.
    """
    num_rows, num_classes = teacher_rows.shape
    spec.check_num_classes(num_classes)
    if spec.rule == GroupRule.LABEL:
        if labels is None:
            raise ValueError('a label partition (DKD) needs labels')
        # Rows whose label is not a class can only be ignored rows
        # (check_labels): any class will do for them.
        target = labels.long().clamp(0, num_classes - 1)
        groups = torch.ones_like(teacher_rows, dtype=torch.long)
        return groups.scatter_(1, target[:, None], 0)
    if spec.adaptive is not None:
        k = adaptive_k(teacher_rows, spec.adaptive.mass, spec.temperature,
                       spec.adaptive.max_k)
        return (topk_group_index(teacher_rows, k) >= k[:, None]).long()
    if not spec.cuts:
        return torch.zeros_like(teacher_rows, dtype=torch.long)
    ranks = topk_group_index(teacher_rows, spec.max_cut)
    cuts = torch.tensor(spec.cuts, device=ranks.device)
    return torch.bucketize(ranks, cuts, right=True)


def row_losses(spec: PartitionSpec,
               student_rows: Tensor,
               teacher_rows: Tensor,
               labels: Optional[Tensor] = None) -> Tensor:
    """The per-row loss of ``spec``: ``(N,)``, with ``T**2``."""
    groups = group_index(spec, teacher_rows, labels)
    return partitioned_kl(student_rows, teacher_rows, groups,
                          spec.num_groups, spec.group_weight,
                          spec.leaf_weights, spec.temperature)


def plain_loss(student: Tensor,
               teacher: Tensor,
               spec: PartitionSpec,
               labels: Optional[Tensor] = None,
               ignore_index: Optional[int] = 255,
               reduction: str = 'mean') -> Tensor:
    """The loss by plain autograd: the path the tests hold exact.

    Args:
        student (Tensor): ``(N, C)`` or ``(B, C, *spatial)`` logits.
        teacher (Tensor): the same shape (already on the student's grid).
        spec (PartitionSpec): the loss.
        labels (Tensor, optional): ``(rows,)`` labels in
            :func:`flatten_logits` order: rows equal to ``ignore_index`` are
            skipped; label partitions read their class.
        ignore_index (int, optional): label of skipped rows; None skips none.
        reduction (str): ``'mean'`` over valid rows, ``'sum'`` or ``'none'``.
    """
    rows = row_losses(spec, flatten_logits(student), flatten_logits(teacher),
                      labels)
    valid = None if labels is None or ignore_index is None \
        else labels != ignore_index
    return reduce_rows(rows, valid, reduction)
