"""The distillation loss family as pure functions (no OpenMMLab imports).

Every member is a *partitioned KL divergence* (``docs/method.md``). For one
row (a sample, or a pixel of a ``(B, C, H, W)`` map) with student logits
``s`` and teacher logits ``t``, ``p = softmax(s / T)``, ``q = softmax(t /
T)``, the classes split into groups ``U_0 .. U_{G-1}`` and

    L_row = T^2 * [ w_group * KL(Q || P) + sum_g w_g * KL(q^g || p^g) ]

where ``P_g = sum_{i in U_g} p_i`` (likewise ``Q_g``) and ``p^g_i = p_i /
P_g`` is the distribution inside group ``g``. Which groups and weights make
which loss (KD, DKD, GDKD, GDKD3, deeper cuts, adaptive k) is a
:class:`~.partition.PartitionSpec`; its ``kl_type`` may turn the
within-group terms into ``KL(p^g || q^g)`` or the mean of both directions.
The options added around the KL (DIST's intra-class term, the entropy) and
DIST itself are in ``relation`` and :func:`entropy_loss`.

This is the *plain* path: autograd differentiates it, so its gradient is an
independent check of the fused path's closed form. It is exact in log space:
each class's within-group log-probability is its logit minus its group's max,
over T, minus the log of that group's sum of exponentials, and a group's
mass is a log-sum-exp of those maxima and sums. No logit is masked with a
large constant and no mass is clamped, so groups whose mass underflows to 0
in floating point still get their exact within-group KL (the official code
returns NaN or a KL over the wrong support there; ``docs/method.md``).
Inputs of any floating dtype are computed in float32 (float64 stays
float64).

Maps are read in place as ``(B, C, P)`` (no permuted copy) and a group is a
float 0/1 mask over that layout: on the CPU, float multiply-adds and
reductions over the class dim are many times faster than boolean selects,
scatters and sorts, and the masks let one exponential per logit serve every
group.

Ties in the teacher's ranking go to the lowest class index (a stable
descending sort), so the partition is deterministic on every device.

Non-finite numbers are never hidden: a row with a non-finite student or
teacher logit has a NaN loss. Ignored rows (``labels == ignore_index``)
contribute 0 loss and 0 gradient whatever their logits.
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .partition import GroupRule, PartitionSpec

__all__ = [
    'flatten_logits', 'as_bcp', 'align_teacher', 'labels_to_rows',
    'check_labels', 'topk_group_index', 'adaptive_k', 'group_masks',
    'group_index', 'partitioned_kl', 'row_losses', 'reduce_rows',
    'finite_rows', 'compute_dtype', 'prepare_rows', 'plain_loss',
    'entropy_loss', 'keep_teacher_correct'
]

# Teacher rankings up to this depth are found by repeated max extraction
# (a few float passes per rank); deeper ones by one stable sort, which costs
# about as much as 100 such passes on the CPU.
_MAX_ROUNDS = 32


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
    """
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


def as_bcp(x: Tensor) -> Tensor:
    """``(N, C)`` -> ``(1, C, N)``, ``(B, C, *spatial)`` -> ``(B, C, P)``;
    views wherever the layout allows (contiguous or channels-last maps, any
    ``(N, C)``), so the logits are read in place."""
    if x.dim() == 2:
        return x.t().unsqueeze(0)
    return x.flatten(2)


def _ranks(teacher: Tensor) -> Tensor:
    """``(B, C, P)`` int64 rank of each class in the teacher's descending
    order (a stable sort: ties to the lowest class index)."""
    order = torch.sort(
        teacher, dim=1, descending=True, stable=True).indices
    positions = torch.arange(
        teacher.shape[1], device=order.device).view(1, -1, 1)
    return torch.empty_like(order).scatter_(1, order,
                                            positions.expand_as(order))


def _top_members(teacher: Tensor,
                 depths: Sequence[Union[int, Tensor]]) -> List[Tensor]:
    """Float 0/1 masks of the teacher's top ``d`` classes, one per depth.

    Args:
        teacher (Tensor): ``(B, C, P)`` float teacher logits.
        depths (Sequence[int | Tensor]): increasing ints in ``[1, C]``, or
            one ``(B, 1, P)`` int64 tensor of per-row depths.

    Returns:
        list[Tensor]: ``(B, C, P)`` masks of the teacher's dtype; ties to
        the lowest class index, as :func:`topk_group_index`.
    """
    per_row = torch.is_tensor(depths[0])
    if per_row:
        deepest = int(depths[0].max()) if depths[0].numel() else 0
    else:
        deepest = depths[-1]
    if teacher.stride(1) == 1 and deepest:
        # Classes contiguous ((N, C) rows): topk is fast, and usually the
        # classes at or above the d-th largest value are exactly d, hence
        # the top d whatever the tie rule.
        largest = torch.topk(teacher.detach(), deepest, dim=1).values
        members = []
        for depth in depths:
            if per_row:
                kth = largest.gather(1, depth.clamp(min=1) - 1)
                size = depth.to(teacher.dtype)
            else:
                kth, size = largest[:, depth - 1:depth], depth
            # 1 at or above the d-th largest: sign(key - kth) + 1, max 1.
            member = (teacher.detach() - kth).sign_().add_(1.).clamp_(max=1.)
            if not bool((member.sum(dim=1, keepdim=True) == size).all()):
                break  # a tie across the d-th place
            members.append(member)
        else:
            return members
    if deepest > _MAX_ROUNDS:
        ranks = _ranks(teacher)
        return [(ranks < d).to(teacher.dtype) for d in depths]
    key = teacher.detach().clone()
    reverse = None
    taken = torch.zeros_like(key)
    members = []
    for rank in range(deepest):
        # 1 where the key equals its row's max: sign(key - max) + 1.
        hit = (key - key.amax(dim=1, keepdim=True)).sign_().add_(1.)
        if not bool((hit.sum(dim=1) == 1).all()):
            # A tie (or a NaN row): keep the lowest-indexed of the maxima.
            if reverse is None:
                reverse = torch.arange(
                    key.shape[1], 0, -1, dtype=key.dtype,
                    device=key.device).view(1, -1, 1)
            first = (hit * reverse).amax(dim=1, keepdim=True)
            hit.mul_((reverse - first).sign_().add_(1.))
        # key - hit / (1 - hit): a picked key becomes -inf, others stay.
        key.addcdiv_(hit, 1. - hit, value=-1.)
        if per_row:
            taken.addcmul_(hit, (rank < depths[0]).to(key.dtype))
        else:
            taken.add_(hit)
            if rank + 1 in depths:
                members.append(taken if rank + 1 == deepest else
                               taken.clone())
    return [taken] if per_row else members


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
    return _ranks(as_bcp(teacher_rows))[0].t()


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


def group_masks(spec: PartitionSpec,
                teacher: Tensor,
                labels: Optional[Tensor] = None,
                row_k: Optional[Tensor] = None) -> Optional[List[Tensor]]:
    """The groups of ``spec`` as ``(B, C, P)`` float 0/1 masks.

    The one place that turns a spec into groups: the plain path and the
    fused torch path both call it.

    Args:
        spec (PartitionSpec): the loss's partition.
        teacher (Tensor): ``(B, C, P)`` float teacher logits.
        labels (Tensor, optional): ``(B, P)`` labels (label partitions).
        row_k (Tensor, optional): ``(B, P)`` per-row cut of an adaptive
            spec, when the caller has it already (else computed here).

    Returns:
        list[Tensor] | None: one mask per group, or None for one group.
    """
    spec.check_num_classes(teacher.shape[1])
    if spec.rule == GroupRule.LABEL:
        if labels is None:
            raise ValueError('a label partition (DKD) needs labels')
        classes = torch.arange(teacher.shape[1], device=teacher.device)
        # A label that is no class (an ignored row) leaves group 0 empty.
        target = (classes.view(1, -1, 1) == labels[:, None]).to(teacher.dtype)
        return [target, 1. - target]
    if spec.adaptive is not None:
        batch, num_classes, pixels = teacher.shape
        if row_k is None:
            row_k = adaptive_k(
                teacher.transpose(1, 2).reshape(batch * pixels, num_classes),
                spec.adaptive.mass, spec.temperature, spec.adaptive.max_k)
        top, = _top_members(teacher, [row_k.view(batch, 1, pixels)])
        return [top, 1. - top]
    if not spec.cuts:
        return None
    members = _top_members(teacher, spec.cuts)
    rest = 1. - members[-1]
    for deeper, shallower in zip(members[:0:-1], members[-2::-1]):
        deeper.sub_(shallower)  # top-c_j minus top-c_{j-1}: ranks between
    return members + [rest]


def _add_per_class(out: Tensor, masks: List[Tensor], values: list,
                   alpha: float = 1.) -> Tensor:
    """``out += alpha * sum_g mask_g * value_g`` in place: each class gets
    its group's value, exactly (one term is ``1 * value``, the others add
    ``0``). Values are floats or ``(B, 1, P)`` tensors. Also under autograd:
    no step saves ``out``."""
    for mask, value in zip(masks, values):
        if torch.is_tensor(value):
            out.addcmul_(mask, value, value=alpha)
        else:
            out.add_(mask, alpha=alpha * value)
    return out


def _per_class(masks: Optional[List[Tensor]], values: list):
    """``sum_g mask_g * value_g``: each class gets its group's value (the
    one value where there is one group, ``masks`` None)."""
    if masks is None:
        return values[0]
    return _add_per_class(masks[0] * values[0], masks[1:], values[1:])


def _group_maxima(student: Tensor, teacher: Tensor,
                  masks: Optional[List[Tensor]], present: Optional[list]):
    """Each group's max logit, ``(B, 1, P)`` per group, for both logits.

    An empty group gets 0 (any finite shift will do: no class uses it).
    """
    if masks is None:
        return ([student.amax(dim=1, keepdim=True)],
                [teacher.amax(dim=1, keepdim=True)])
    student_max, teacher_max = [], []
    for mask, nonempty in zip(masks, present):
        # (m - 1) / m: 0 inside the group, -inf outside.
        outside = (mask - 1.).div_(mask)
        teacher_max.append(torch.where(
            nonempty, (teacher + outside).amax(dim=1, keepdim=True), 0.))
        student_max.append(torch.where(
            nonempty, outside.add_(student).amax(dim=1, keepdim=True), 0.))
    return student_max, teacher_max


def _group_log_softmax(logits: Tensor, masks: Optional[List[Tensor]],
                       present: Optional[list], maxima: list,
                       temperature: float):
    """Log-softmax of ``logits / T`` inside each class's group, and the log
    of each group's softmax mass.

    A group's max is subtracted *before* dividing by T, so logits that share
    a large offset (a spread of 1e4/T in a row) keep their small differences
    exactly in float32. The maxima are constants to autograd: the results
    are shift invariant, so the gradient is exact.

    Args:
        logits (Tensor): ``(B, C, P)`` float logits.
        masks (list[Tensor] | None): ``(B, C, P)`` group masks.
        present (list[Tensor] | None): ``(B, 1, P)`` whether each group has
            a class.
        maxima (list[Tensor]): ``(B, 1, P)`` each group's max logit.
        temperature (float): T.

    Returns:
        tuple: ``(leaf, log_mass)``: ``(B, C, P)`` within-group
        log-probabilities and ``(B, G, P)`` log group masses (``-inf`` for an
        empty group).
    """
    # The maxima carry no gradient.
    if masks is None:
        shifted = logits - maxima[0]
    else:
        shifted = _add_per_class(
            torch.addcmul(logits, masks[0], maxima[0], value=-1.),
            masks[1:], maxima[1:], -1.)
    if temperature != 1:
        shifted = shifted.div_(temperature)
    exps = shifted.exp()
    if masks is None:
        log_sum = exps.sum(dim=1, keepdim=True).log()
        return shifted.sub_(log_sum), log_sum.new_zeros(log_sum.shape)
    # A nonempty group's sum is >= 1 (its max contributes exp(0)); an empty
    # group's is 0, and 1 stands in for it so its log (and gradient) stays
    # finite.
    log_sums = [torch.where(p, (exps * m).sum(dim=1, keepdim=True), 1.).log()
                for p, m in zip(present, masks)]
    row_max = logits.detach().amax(dim=1, keepdim=True)
    log_mass = torch.cat([
        torch.where(p, (x - row_max) / temperature + log_sum, float('-inf'))
        for p, x, log_sum in zip(present, maxima, log_sums)], dim=1)
    log_mass = log_mass - log_mass.logsumexp(dim=1, keepdim=True)
    # exp saved its result, not its input: shifted may be overwritten.
    return _add_per_class(shifted, masks, log_sums, -1.), log_mass


def _partitioned_kl(student: Tensor, teacher: Tensor,
                    masks: Optional[List[Tensor]], group_weight,
                    leaf_weights: list, temperature: float,
                    kl_type: str = 'forward') -> Tensor:
    """``(B, P)`` partitioned KL of ``(B, C, P)`` logits, times ``T**2``.

    Weights are floats or tensors that broadcast to ``(B, 1, P)``;
    ``kl_type`` is the direction of the within-group KLs
    (``partition.KL_TYPES``). A row with a non-finite logit gets NaN.
    """
    with torch.no_grad():
        present = None if masks is None else [
            m.amax(dim=1, keepdim=True) > 0 for m in masks]
        student_max, teacher_max = _group_maxima(student.detach(), teacher,
                                                 masks, present)
        leaf_q, log_q = _group_log_softmax(teacher, masks, present,
                                           teacher_max, temperature)
        per_class_weight = _per_class(masks, leaf_weights)
        # Each class's KL weight: its group's leaf weight times q^g_i.
        weight = leaf_q.exp().mul_(per_class_weight)
    leaf_p, log_p = _group_log_softmax(student, masks, present, student_max,
                                       temperature)
    if kl_type == 'forward':
        # Within-group KLs from log-ratios: never divides two tiny masses.
        rows = leaf_q.sub_(leaf_p).mul_(weight).sum(dim=1, keepdim=True)
    else:
        # KL(p^g || q^g) = sum_i p^g_i (log p^g_i - log q^g_i).
        rows = ((leaf_p - leaf_q) * leaf_p.exp() * per_class_weight).sum(
            dim=1, keepdim=True)
        if kl_type == 'both':
            forward = leaf_q.sub_(leaf_p).mul_(weight).sum(dim=1,
                                                           keepdim=True)
            rows = 0.5 * (forward + rows)
    if masks is not None:
        # Q_g (log Q_g - log P_g), 0 for an empty group (0 log 0 = 0).
        terms = torch.where(log_q > float('-inf'),
                            log_q.exp() * (log_q - log_p), 0.)
        rows = rows + group_weight * terms.sum(dim=1, keepdim=True)
    finite = finite_rows(student, teacher)
    return torch.where(finite, rows[:, 0] * temperature**2, float('nan'))


def finite_rows(*logits: Tensor) -> Tensor:
    """``(B, P)``: whether every logit of the row is finite in each of the
    ``(B, C, P)`` ``logits`` (max and min propagate NaN, so both are finite
    iff every logit is)."""
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


def partitioned_kl(student_rows: Tensor,
                   teacher_rows: Tensor,
                   groups: Tensor,
                   num_groups: int,
                   binary_weight: Union[float, Tensor],
                   group_weights: Union[Sequence[float], Tensor],
                   temperature: float = 1.0) -> Tensor:
    """Per-row partitioned KL(teacher || student) of any partition, times
    ``T**2``.

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
    dtype = compute_dtype(student_rows)
    student = as_bcp(student_rows.to(dtype))
    teacher = as_bcp(teacher_rows.detach().to(dtype))
    masks = [as_bcp((groups == g).to(dtype)) for g in range(num_groups)]

    def per_row(weight):  # float, or (N,) -> (1, 1, N)
        if torch.is_tensor(weight):
            return weight.to(dtype).view(1, 1, -1)
        return float(weight)

    if torch.is_tensor(group_weights) and group_weights.dim() == 2:
        leaf_weights = [per_row(w) for w in group_weights.unbind(1)]
    else:
        leaf_weights = [float(w) for w in group_weights]
    return _partitioned_kl(student, teacher, masks, per_row(binary_weight),
                           leaf_weights, temperature)[0]


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
    teacher = as_bcp(teacher_rows.detach().to(compute_dtype(teacher_rows)))
    masks = group_masks(spec, teacher,
                        None if labels is None else labels.view(1, -1))
    if masks is None:
        return torch.zeros_like(teacher_rows, dtype=torch.long)
    ids = _per_class(masks, list(range(len(masks))))
    return ids[0].t().long()


def _spec_rows(spec: PartitionSpec, student: Tensor, teacher: Tensor,
               labels: Optional[Tensor]) -> Tensor:
    """``(B, P)`` losses of ``spec`` for ``(B, C, P)`` logits and ``(B, P)``
    labels."""
    masks = group_masks(spec, teacher, labels)
    return _partitioned_kl(student, teacher, masks, spec.group_weight,
                           list(spec.leaf_weights), spec.temperature,
                           spec.kl_type)


def row_losses(spec: PartitionSpec,
               student_rows: Tensor,
               teacher_rows: Tensor,
               labels: Optional[Tensor] = None) -> Tensor:
    """The per-row loss of ``spec``: ``(N,)``, with ``T**2``."""
    dtype = compute_dtype(student_rows)
    return _spec_rows(spec, as_bcp(student_rows.to(dtype)),
                      as_bcp(teacher_rows.detach().to(dtype)),
                      None if labels is None else labels.view(1, -1))[0]


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
        tuple: ``(student3, teacher3, labels2, valid)``: ``(B, C, P)``
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
    student3 = as_bcp(student.to(dtype))
    teacher3 = as_bcp(teacher.detach().to(dtype))
    valid = None
    if labels is not None:
        check_labels(labels, student3.shape[1], ignore_index)
        labels = labels.reshape(student3.shape[0], student3.shape[2])
        if ignore_index is not None:
            valid = labels != ignore_index
            student3, teacher3 = _drop_non_finite_ignored(
                student3, teacher3, valid)
    return student3, teacher3, labels, valid


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
            skipped; label partitions read their class. Checked with
            :func:`check_labels`.
        ignore_index (int, optional): label of skipped rows; None skips none.
        reduction (str): ``'mean'`` over valid rows, ``'sum'`` or ``'none'``.

    Returns:
        Tensor: a scalar, or ``(rows,)`` for ``'none'``; float32 (float64
        for float64 inputs).
    """
    student3, teacher3, labels, valid = prepare_rows(student, teacher,
                                                     labels, ignore_index)
    rows = _spec_rows(spec, student3, teacher3, labels)
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
    student3, _, _, valid = prepare_rows(student, student, labels,
                                         ignore_index)
    log_p = torch.log_softmax(student3 / temperature, dim=1)
    rows = -(log_p.exp() * log_p).sum(dim=1)
    rows = torch.where(finite_rows(student3), rows, float('nan'))
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
    teacher3 = as_bcp(teacher.detach())
    check_labels(labels, teacher3.shape[1], ignore_index)
    correct = teacher3.argmax(dim=1).reshape(-1) == labels
    correct |= ~finite_rows(teacher3).reshape(-1)
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
