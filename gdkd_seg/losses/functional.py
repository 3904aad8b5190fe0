"""The distillation loss family as pure functions (no OpenMMLab imports).

Every KL loss of the package is one partitioned KL divergence, defined (and
its equation written) in :func:`partitioned_kl`; ``docs/method.md`` gives
the method around it. The *plain* path reads top to bottom:
:func:`plain_loss` -> :func:`row_losses` -> :func:`group_index` (the spec's
integer group of each class) -> :func:`partitioned_kl` (a masked
log-sum-exp per group, :func:`log_softmax_by_group`, then the weighted
KLs). Autograd differentiates it, so its gradient is an independent check
of the fused path's closed form (``fused.py``), which is where speed is.

Inputs of any floating dtype are computed in float32 (float64 stays
float64); maps are read in place as ``(B, C, P)`` (no permuted copy).
Non-finite numbers are never hidden: a row with a non-finite student or
teacher logit has a NaN loss. Ignored rows (``labels == ignore_index``)
contribute 0 loss and 0 gradient whatever their logits. The options added
around the KL (DIST's intra-class term, the entropy) and DIST itself are in
``relation`` and :func:`entropy_loss`.
"""
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .partition import GroupRule, PartitionSpec
from .standardize import GROUP_MODES, check_mode, standardize_groups

__all__ = [
    'flatten_logits', 'as_bcp', 'align_teacher', 'labels_to_rows',
    'check_label_dtype', 'check_labels', 'adaptive_k', 'group_index',
    'log_softmax_by_group', 'partitioned_kl', 'row_losses', 'reduce_rows',
    'finite_rows', 'compute_dtype', 'prepare_rows', 'plain_loss',
    'entropy_loss', 'keep_teacher_correct'
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
        'expected (N, C) or (B, C, H, W) logits, got shape '
        f'{tuple(logits.shape)}')
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
        if student_logits.numel() == 0:  # nothing to resize onto
            return teacher_logits.new_zeros(student_logits.shape)
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

    Raises:
        TypeError: ``labels`` are not of an integer dtype (see
            :func:`check_label_dtype`).
    """
    check_label_dtype(labels)
    if logits.dim() == 2:
        if labels.shape != logits.shape[:1]:
            raise ValueError(
                f'labels for (N, C) logits must be (N,), got '
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
        if logits.numel() == 0:  # no pixel to label
            return labels.new_zeros(0, dtype=torch.long)
        # 'nearest' on float keeps label ids exact (they are < 2**24).
        labels = F.interpolate(
            labels[:, None].float(), size=logits.shape[2:],
            mode='nearest')[:, 0]
    return labels.reshape(-1).long()


def check_label_dtype(labels: Tensor) -> None:
    """Raise TypeError unless ``labels`` hold integers (not bool).

    Class ids are integers: a float label of 1.7 would be truncated to class
    1 and a bool map (255 -> True) read as class 1, both silently.
    """
    if labels.dtype == torch.bool or labels.dtype.is_floating_point \
            or labels.dtype.is_complex:
        raise TypeError('labels must be an integer tensor of class ids, got '
                        f'dtype {labels.dtype}')


def check_labels(labels: Tensor, num_classes: int,
                 ignore_index: Optional[int]) -> None:
    """Raise ValueError if a label is neither ``ignore_index`` nor a class
    (TypeError if the labels are not integers, :func:`check_label_dtype`).

    As ``torch.nn.functional.cross_entropy`` refuses out-of-range targets: a
    label of 100 (or -3) with 19 classes is a data error, never a valid
    pixel. Reads the labels on their device (a host sync on CUDA).
    """
    check_label_dtype(labels)
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


def as_bcp(x: Tensor) -> Tensor:
    """``(N, C)`` -> ``(1, C, N)``, ``(B, C, *spatial)`` -> ``(B, C, P)``;
    views wherever the layout allows (contiguous or channels-last maps, any
    ``(N, C)``), so the logits are read in place."""
    if x.dim() == 2:
        return x.t().unsqueeze(0)
    return x.flatten(2)


def _rows(x: Tensor) -> Tensor:
    """``(N, C)`` rows as they are, ``(B, C, P)`` as ``(B * P, C)``."""
    return x if x.dim() == 2 else x.transpose(1, 2).reshape(-1, x.shape[1])


def _class_ids(x: Tensor) -> Tensor:
    """0..C-1 along dim 1, broadcastable against ``x``."""
    ids = torch.arange(x.shape[1], device=x.device)
    return ids.view(-1, *(1, ) * (x.dim() - 2))


def _in_top(teacher: Tensor, kth: Tensor, size) -> Tensor:
    """Whether each class is among the teacher's top ``size`` (an int, or
    per-row sizes shaped like ``kth``), given ``kth``, each row's
    ``size``-th largest logit: the classes above it and, of those equal to
    it, the lowest-indexed ones (a stable descending sort's first
    ``size``)."""
    in_top = teacher >= kth
    tie = (in_top.sum(1, keepdim=True) > size).squeeze(1)
    if bool(tie.any()):  # a tie across the last place: fix those rows
        logits, last = teacher.movedim(1, -1)[tie], kth.movedim(1, -1)[tie]
        above, tied = logits > last, logits == last
        free = (size if isinstance(size, int) else
                size.movedim(1, -1)[tie]) - above.sum(1, keepdim=True)
        in_top.movedim(1, -1)[tie] = above | tied & (tied.cumsum(1) <= free)
    return in_top


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
    fills the top group is :func:`group_index`'s business (lowest index); k
    does not depend on it.

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


def group_index(spec: PartitionSpec,
                teacher: Tensor,
                labels: Optional[Tensor] = None,
                row_k: Optional[Tensor] = None) -> Tensor:
    """Each class's group, as ``spec`` defines the groups (``docs/method.md``).

    By the teacher's ranking (descending, ties to the lowest class index),
    a class of rank ``r`` is in group ``#{j : c_j <= r}`` for the cut
    points ``c_j`` (one per-row cut for an adaptive spec), i.e. the number
    of cuts whose top ``c_j`` it is not in; by the label, the ground-truth
    class is group 0 and the rest group 1 (a label that is no class, as on an
    ignored row, leaves group 0 empty).

    Args:
        spec (PartitionSpec): the loss's partition.
        teacher (Tensor): ``(N, C)`` rows or ``(B, C, P)`` maps of teacher
            logits.
        labels (Tensor, optional): ``(N,)`` or ``(B, P)`` class ids (label
            partitions).
        row_k (Tensor, optional): ``(N,)`` or ``(B, P)`` per-row cut of an
            adaptive spec, when the caller has it (else computed here).

    Returns:
        Tensor: int64 group ids in ``[0, spec.num_groups)``, shaped like
        ``teacher``.
    """
    spec.check_num_classes(teacher.shape[1])
    if spec.rule == GroupRule.LABEL:
        if labels is None:
            raise ValueError('a label partition (DKD) needs labels')
        return (_class_ids(teacher) != labels.unsqueeze(1)).long()
    if spec.adaptive is None and not spec.cuts:
        return torch.zeros(teacher.shape, dtype=torch.long,
                           device=teacher.device)
    teacher = teacher.detach()
    if spec.adaptive is None:
        cuts = spec.cuts
        depth = cuts[-1]
    else:
        if row_k is None:
            row_k = adaptive_k(_rows(teacher), spec.adaptive.mass,
                               spec.temperature, spec.adaptive.max_k)
        cuts = [row_k.view(teacher.shape[:1] + (1, ) + teacher.shape[2:])]
        depth = int(row_k.max()) if row_k.numel() else 1
    # largest[:, c - 1]: the c-th largest teacher logit of each row.
    largest = teacher.topk(depth, dim=1).values
    group = 0
    for cut in cuts:  # + 1 for each cut whose top it is not in: rank >= cut
        kth = largest.gather(1, cut - 1) if torch.is_tensor(cut) else \
            largest[:, cut - 1:cut]
        group = group + ~_in_top(teacher, kth, cut)
    return group


def log_softmax_by_group(logits: Tensor, group: Tensor, num_groups: int,
                         temperature: float):
    """``log p^g_i`` of every class and ``log P_g`` of every group, for
    ``p = softmax(logits / T)``: a log-sum-exp per group.

    Each group is taken relative to its own max logit ``m_g``, subtracted
    before dividing by T (logits that share a large offset keep their small
    differences in float32)::

        x_i       = (s_i - m_g) / T                  (i in U_g)
        log Z_g   = log sum_{i in U_g} exp(x_i)      (>= 0: m_g gives exp(0))
        log p^g_i = x_i - log Z_g
        log P_g   = (m_g - max_h m_h) / T + log Z_g, normalised over g

    so no exponential of a group underflows as a whole and nothing is
    clamped. The maxima are constants to autograd (the results are shift
    invariant). An empty group has ``m_g = -inf``, ``Z_g = 0`` and
    ``log P_g = -inf``; no class reads its slot, so its gradient never
    reaches a logit.

    Args:
        logits (Tensor): ``(N, C)`` or ``(B, C, P)`` float logits.
        group (Tensor): int64 group of each class, shaped like ``logits``.
        num_groups (int): G.
        temperature (float): T.

    Returns:
        tuple: ``(leaf, log_mass)``: within-group log-probabilities shaped
        like ``logits``, and ``(N, G)`` or ``(B, G, P)`` log group masses.
    """
    per_group = list(logits.shape)
    per_group[1] = num_groups
    maxima = logits.new_full(per_group, -math.inf).scatter_reduce(
        1, group, logits.detach(), 'amax')
    shifted = logits - maxima.gather(1, group)
    if temperature != 1:
        shifted = shifted / temperature
    log_sums = logits.new_zeros(per_group).scatter_add(
        1, group, shifted.exp()).log()
    leaf = shifted - log_sums.gather(1, group)
    log_mass = (maxima - maxima.amax(1, keepdim=True)) / temperature + \
        log_sums
    return leaf, log_mass - log_mass.logsumexp(1, keepdim=True)


def partitioned_kl(student: Tensor,
                   teacher: Tensor,
                   group: Tensor,
                   group_weight: Union[float, Tensor],
                   leaf_weights: Union[Sequence[float], Tensor],
                   temperature: float = 1.0,
                   kl_type: str = 'forward') -> Tensor:
    """The partitioned KL divergence of each row, the loss family's one
    definition (``docs/method.md``).

    With ``p = softmax(s / T)``, ``q = softmax(t / T)``, the classes split
    into groups ``U_0 .. U_{G-1}``, group masses ``P_g = sum_{i in U_g} p_i``
    (likewise ``Q_g``) and within-group distributions ``p^g_i = p_i / P_g``
    (likewise ``q^g``)::

        L_row = T^2 * [ w_group * KL(Q || P) + sum_g w_g * KL(q^g || p^g) ]

    ``kl_type`` ``'reverse'`` turns the within-group terms into
    ``KL(p^g || q^g)``, ``'both'`` into the mean of both directions (the
    group term stays ``KL(Q || P)``). Computed in log space
    (:func:`log_softmax_by_group`): no logit is masked with a large constant
    and no mass is clamped, so a group whose mass underflows to 0 still gets
    its exact within-group KL. A row with a non-finite logit gets NaN.
    Autograd differentiates it: its gradient is an independent check of the
    fused path's closed form.

    Args:
        student (Tensor): ``(N, C)`` or ``(B, C, P)`` student logits.
        teacher (Tensor): the same shape, not differentiated.
        group (Tensor): int64 group of each class in ``[0, G)``
            (:func:`group_index`), the same shape.
        group_weight (float | Tensor): ``w_group``; a float, or per row
            ``(N,)`` or ``(B, P)``.
        leaf_weights (Sequence[float] | Tensor): ``w_g``, ``(G,)``, or per
            row ``(N, G)`` or ``(B, G, P)``.
        temperature (float): T > 0.
        kl_type (str): ``'forward'``, ``'reverse'`` or ``'both'``.

    Returns:
        Tensor: ``(N,)`` or ``(B, P)`` losses.
    """
    leaf_weights = torch.as_tensor(leaf_weights, dtype=student.dtype,
                                   device=student.device)
    if leaf_weights.dim() == 1:  # (G,) -> (1, G) or (1, G, 1)
        leaf_weights = leaf_weights.view(1, -1, *(1, ) * (student.dim() - 2))
    per_group = list(student.shape)
    per_group[1] = leaf_weights.shape[1]
    with torch.no_grad():
        leaf_q, log_q = log_softmax_by_group(teacher, group, per_group[1],
                                             temperature)
        # w_g of each class's group: sum_g w_g KL_g = sum_i w_g(i) term_i.
        class_weight = leaf_weights.expand(per_group).gather(1, group)
    leaf_p, log_p = log_softmax_by_group(student, group, per_group[1],
                                         temperature)
    # Per class q^g_i log(q^g_i / p^g_i) (the log-probabilities within a
    # nonempty group are finite, so no 0 log 0 arises).
    if kl_type == 'forward':
        within = leaf_q.exp() * (leaf_q - leaf_p)
    elif kl_type == 'reverse':
        within = leaf_p.exp() * (leaf_p - leaf_q)
    else:  # the mean of both directions
        within = (leaf_q.exp() - leaf_p.exp()) * (leaf_q - leaf_p) / 2
    # KL(Q || P) over the groups: an empty group has Q_g = 0, 0 log 0 = 0.
    group_kl = torch.where(log_q > -math.inf,
                           log_q.exp() * (log_q - log_p), 0.).sum(1)
    rows = group_weight * group_kl + (class_weight * within).sum(1)
    finite = finite_rows(student, teacher)
    return torch.where(finite, rows * temperature**2, math.nan)


def finite_rows(*logits: Tensor) -> Tensor:
    """``(N,)`` or ``(B, P)``: whether every logit of the row is finite in
    each of the ``(N, C)`` or ``(B, C, P)`` ``logits`` (max and min
    propagate NaN, so both are finite iff every logit is)."""
    finite = None
    for x in logits:
        x = x.detach()
        ok = torch.isfinite(x.amax(dim=1)) & torch.isfinite(x.amin(dim=1))
        finite = ok if finite is None else finite & ok
    return finite


def compute_dtype(student: Tensor) -> torch.dtype:
    """The dtype the losses compute in: float64 for float64 logits, else
    float32."""
    return torch.float64 if student.dtype == torch.float64 else torch.float32


def reduce_rows(row_losses: Tensor,
                valid: Optional[Tensor] = None,
                reduction: str = 'mean') -> Tensor:
    """Reduce per-row losses over valid rows.

    ``'mean'`` divides by the number of valid rows; with none valid (or no
    rows at all) it returns 0 with a zero (finite) gradient instead of 0/0.
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


def row_losses(spec: PartitionSpec,
               student: Tensor,
               teacher: Tensor,
               labels: Optional[Tensor] = None,
               standardize: Optional[str] = None) -> Tensor:
    """The per-row loss of ``spec`` (with ``T**2``): its groups
    (:func:`group_index`), then :func:`partitioned_kl`; ``standardize``
    (``'both'``/``'other'``) z-scores the logits of the within-group KLs
    per group (``standardize.standardize_groups``).

    Args:
        spec (PartitionSpec): the loss.
        student (Tensor): ``(N, C)`` or ``(B, C, P)`` logits.
        teacher (Tensor): the same shape.
        labels (Tensor, optional): ``(N,)`` or ``(B, P)`` class ids (label
            partitions).

    Returns:
        Tensor: ``(N,)`` or ``(B, P)`` losses, in the compute dtype.
    """
    check_mode(standardize, (None, *GROUP_MODES))
    dtype = compute_dtype(student)
    student, teacher = student.to(dtype), teacher.detach().to(dtype)
    group = group_index(spec, teacher, labels)
    if standardize is None:
        return partitioned_kl(student, teacher, group, spec.group_weight,
                              spec.leaf_weights, spec.temperature,
                              spec.kl_type)
    if spec.num_groups == 1:
        raise ValueError(f'standardize={standardize!r} needs groups; this '
                         'partition has one')
    # The loss is linear in its weights: the group KL of the raw logits plus
    # the within-group KLs of the standardised ones.
    group_term = partitioned_kl(student, teacher, group, spec.group_weight,
                                [0.] * spec.num_groups, spec.temperature)
    leaf_terms = partitioned_kl(
        standardize_groups(student, group, spec.num_groups, standardize),
        standardize_groups(teacher, group, spec.num_groups, standardize),
        group, 0., spec.leaf_weights, spec.temperature, spec.kl_type)
    return group_term + leaf_terms


def prepare_rows(student: Tensor, teacher: Tensor,
                 labels: Optional[Tensor] = None,
                 ignore_index: Optional[int] = 255):
    """Check and lay out one call's inputs as the losses read them.

    Args:
        student (Tensor): ``(N, C)`` or ``(B, C, *spatial)`` logits.
        teacher (Tensor): the same shape (already on the student's grid).
        labels (Tensor, optional): ``(rows,)`` labels in
            :func:`flatten_logits` order, checked with :func:`check_labels`.
        ignore_index (int, optional): label of skipped rows; None skips none.

    Returns:
        tuple: ``(student, teacher, labels, valid)``: ``(B, C, P)``
        logits in the compute dtype (the teacher detached; the logits of
        ignored rows zeroed if one of them is not finite, so their gradient
        stays 0), ``(B, P)`` labels (or None) and the ``(B, P)`` bool valid
        rows (None: all).
    """
    if student.shape != teacher.shape:
        raise ValueError('student and teacher logits must have the same '
                         f'shape, got {tuple(student.shape)} and '
                         f'{tuple(teacher.shape)}')
    dtype = compute_dtype(student)
    student = as_bcp(student.to(dtype))
    teacher = as_bcp(teacher.detach().to(dtype))
    valid = None
    if labels is not None:
        check_labels(labels, student.shape[1], ignore_index)
        labels = labels.reshape(student.shape[0], student.shape[2])
        if ignore_index is not None:
            valid = labels != ignore_index
            student, teacher = _drop_non_finite_ignored(student, teacher,
                                                        valid)
    return student, teacher, labels, valid


def plain_loss(student: Tensor,
               teacher: Tensor,
               spec: PartitionSpec,
               labels: Optional[Tensor] = None,
               ignore_index: Optional[int] = 255,
               reduction: str = 'mean',
               standardize: Optional[str] = None) -> Tensor:
    """The loss by plain autograd: the path the tests hold exact.

    Args:
        student (Tensor): ``(N, C)`` or ``(B, C, *spatial)`` logits.
        teacher (Tensor): the same shape (already on the student's grid).
        spec (PartitionSpec): the loss.
        labels (Tensor, optional): ``(rows,)`` labels in
            :func:`flatten_logits` order: rows equal to ``ignore_index`` are
            skipped; label partitions read their class. Checked with
            :func:`check_labels`.
        ignore_index (int, optional): label of skipped rows; None skips none.
        reduction (str): ``'mean'`` over valid rows, ``'sum'`` or ``'none'``.
        standardize (str, optional): ``'both'`` or ``'other'``: the
            per-group logit standardisation of the within-group KLs
            (``standardize.py``; ``'global'`` is a transform of the inputs,
            :func:`standardize.standardize`). Default None.

    Returns:
        Tensor: a scalar, or ``(rows,)`` for ``'none'``; float32 (float64
        for float64 inputs).
    """
    is_rows = student.dim() == 2
    student, teacher, labels, valid = prepare_rows(student, teacher, labels,
                                                   ignore_index)
    if is_rows:  # back to (N, C): gather and scatter are fast along rows
        student, teacher = student[0].t(), teacher[0].t()
        labels = None if labels is None else labels[0]
    rows = row_losses(spec, student, teacher, labels, standardize)
    return reduce_rows(rows.reshape(-1),
                       None if valid is None else valid.reshape(-1),
                       reduction)


def entropy_loss(student: Tensor,
                 labels: Optional[Tensor] = None,
                 ignore_index: Optional[int] = 255,
                 temperature: float = 1.0,
                 reduction: str = 'mean') -> Tensor:
    """The entropy ``-sum_i p_i log p_i`` of ``p = softmax(s / T)``,
    reduced over valid rows like :func:`plain_loss` (NaN for a valid row
    with a non-finite logit)."""
    student, _, _, valid = prepare_rows(student, student, labels,
                                        ignore_index)
    log_p = torch.log_softmax(student / temperature, dim=1)
    rows = -(log_p.exp() * log_p).sum(dim=1)
    rows = torch.where(finite_rows(student), rows, float('nan'))
    return reduce_rows(rows.reshape(-1),
                       None if valid is None else valid.reshape(-1),
                       reduction)


def keep_teacher_correct(labels: Tensor, teacher: Tensor,
                         ignore_index: Optional[int]):
    """Relabel the rows the teacher gets wrong as ignored.

    A row counts when its label is a class and the teacher's arg-max (ties
    to the lowest class index) equals it; void rows never count. A row with
    a non-finite teacher logit has no arg-max: it stays (and makes the loss
    NaN) rather than being hidden.

    Args:
        labels (Tensor): ``(rows,)`` labels in :func:`flatten_logits` order.
        teacher (Tensor): ``(N, C)`` or ``(B, C, *spatial)`` logits.
        ignore_index (int, optional): label of void rows (None: none).

    Returns:
        tuple: ``(labels, ignore_index)`` to pass on: the wrong rows carry
        ``ignore_index`` (-1 when it is None).
    """
    teacher = as_bcp(teacher.detach())
    check_labels(labels, teacher.shape[1], ignore_index)
    correct = teacher.argmax(dim=1).reshape(-1) == labels
    correct |= ~finite_rows(teacher).reshape(-1)
    ignore = -1 if ignore_index is None else ignore_index
    return torch.where(correct, labels, ignore), ignore


def _drop_non_finite_ignored(student: Tensor, teacher: Tensor,
                             valid: Tensor):
    """Zero the logits of ignored rows if any of them is not finite.

    An ignored row's loss is masked to 0 and its gradient is 0 times the
    row's local derivatives, which is NaN for NaN logits; zeros in place of
    its logits keep that gradient 0.
    """
    if bool((finite_rows(student, teacher) | valid).all()):
        return student, teacher
    keep = valid[:, None]
    return torch.where(keep, student, 0.), torch.where(keep, teacher, 0.)
