"""The fused loss on any device in plain PyTorch (see ``fused.py``).

Chunks of pixels, each a few ``(C, L)`` temporaries; nothing logits-sized
besides the gradient. Any :class:`~.partition.PartitionSpec`: any number of
cut points, a per-row cut, or the label partition, grouped by the rule of
``functional.group_index``. Same numerics as the plain path
(``functional.partitioned_kl``): float32 accumulation (float64 inputs stay
float64), each group's log-softmax relative to the group's own max, no
masking constant, no clamping of masses. A row with a non-finite logit has
a NaN loss (and gradient) if it is valid and 0 if it is ignored.
"""
from typing import List, Optional

import torch
from torch import Tensor

from . import functional
from .partition import GroupRule, PartitionSpec

# Pixels per chunk are chosen so a chunk holds ~2**18 logits: the ~15
# chunk-sized temporaries are a fixed ~15 MiB working set (fp32) whatever the
# input size, besides the one logits-sized tensor, the gradient.
_CHUNK_ELEMENTS = 1 << 18


# On CPU, torch.where, boolean and integer ops, gathers, scatters, cumsum and
# topk over a strided dim run 4-60x slower than float arithmetic, so groups
# are float 0/1 masks and every per-class step is a multiply-add or a
# max/sum reduction. Logits within +-1e38 (checked per chunk; beyond, they
# are clamped) leave 3e38 below every key and a "minus infinity" that keeps
# 0 * it finite.
_BIG = 3.0e38
_CLAMP = 1.0e38
# Teacher ranks up to this depth are found by max extraction (a few float
# passes per rank); deeper partitions by ``functional.group_index``.
_MAX_ROUNDS = 32


def _top_masks(t: Tensor, depths) -> List[Tensor]:
    """Float 0/1 ``(C, L)`` masks of the teacher's top ``d`` classes, for
    each of the increasing int ``depths``, or one mask for an ``(L,)``
    tensor of per-row depths.

    ``functional.group_index``'s rule (ties to the lowest class index) by
    repeated max extraction in float arithmetic: per rank, ``hit`` is 1 at
    the row's max, the lowest-indexed one if several tie, and that class's
    key drops to minus infinity.
    """
    per_row = torch.is_tensor(depths)
    deepest = int(depths.max()) if per_row else depths[-1]
    if t.stride(0) == 1:
        # Classes contiguous (rows): topk is fast, and usually the classes
        # at or above the d-th largest value are exactly d, hence the top d
        # whatever the tie rule.
        largest = torch.topk(t, deepest, dim=0).values
        masks = []
        for depth in [depths] if per_row else depths:
            if per_row:
                kth = largest.gather(0, depth[None] - 1)
                size = depth.to(t.dtype)
            else:
                kth, size = largest[depth - 1], depth
            # sign(t - kth) + 1, at most 1: 1 at or above the d-th largest.
            member = (t - kth).sign_().add_(1.).clamp_(max=1.)
            if not bool((member.sum(dim=0) == size).all()):
                break  # a tie across the d-th place: max extraction below
            masks.append(member)
        else:
            return masks
    key = t.clone()
    taken = torch.zeros_like(key)
    # C - class index: the largest among tied maxima is the lowest index.
    reverse_index = torch.arange(key.shape[0], 0, -1, dtype=key.dtype,
                                 device=key.device).view(-1, 1)
    masks = []
    for rank in range(deepest):
        # sign(key - max) + 1: 1 where the key equals its row's max, else 0.
        hit = (key - key.amax(dim=0)).sign_().add_(1.)
        if not bool((hit.sum(dim=0) == 1).all()):  # a tie (or a NaN row)
            first = (hit * reverse_index).amax(dim=0)
            hit.mul_((reverse_index - first).sign_().add_(1.))
        # key - hit / (1 - hit): a picked key becomes -inf, others stay.
        key.addcdiv_(hit, 1. - hit, value=-1.)
        if per_row:
            taken.addcmul_(hit, (rank < depths).to(key.dtype))
        else:
            taken.add_(hit)
            if rank + 1 in depths:  # a copy unless no rank comes after it
                masks.append(taken if rank + 1 == deepest else taken.clone())
    return [taken] if per_row else masks


def _group_masks(t: Tensor, labels: Optional[Tensor],
                 row_k: Optional[Tensor],
                 spec: PartitionSpec) -> Optional[List[Tensor]]:
    """Float 0/1 masks ``(C, L)``, one per group (None for one group), by
    ``functional.group_index``'s rule: float compares and max extraction
    (the fast form on the CPU), ``group_index`` itself past
    ``_MAX_ROUNDS`` ranks."""
    spec.check_num_classes(t.shape[0])
    if spec.num_groups == 1:
        return None
    if spec.rule == GroupRule.LABEL:
        if labels is None:
            raise ValueError('a label partition (DKD) needs labels')
        classes = torch.arange(t.shape[0], device=t.device).view(-1, 1)
        target = (classes == labels).to(t.dtype)  # group 0: the label
        return [target, 1. - target]
    if spec.depth(t.shape[0]) <= _MAX_ROUNDS:
        if spec.adaptive is not None:
            if row_k is None:
                row_k = functional.adaptive_k(
                    t.t(), spec.adaptive.mass, spec.temperature,
                    spec.adaptive.max_k)
            top, = _top_masks(t, row_k)
            return [top, 1. - top]
        tops = _top_masks(t, spec.cuts)
        # ranks [c_{j-1}, c_j): top-c_j minus top-c_{j-1}
        return [tops[0]] + [deeper - shallower for shallower, deeper in
                            zip(tops, tops[1:])] + [1. - tops[-1]]
    group = functional.group_index(
        spec, t[None], row_k=None if row_k is None else row_k[None])[0]
    return [(group == g).to(t.dtype) for g in range(spec.num_groups)]


def _group_max(x: Tensor, mask: Tensor) -> Tensor:
    """Max of x over the group, about -3e38 for an empty group."""
    return torch.addcmul(x, mask - 1., x.new_tensor(_BIG)).amax(dim=0)


def _per_class(masks: list, values: list) -> Tensor:
    """``(C, L)``: each class gets its group's ``(L,)`` value.

    ``v_last + m_g (v_g - v_last)``, so group g effectively gets
    ``fl(v_last + (v_g - v_last))``; :func:`_effective` gives the same
    values per row, so a shift is used consistently.
    """
    out = values[-1]
    for mask, value in zip(masks[:-1], values[:-1]):
        out = torch.addcmul(out, mask, value - values[-1])
    return out


def _effective(values: list) -> list:
    return [values[-1] + (v - values[-1]) for v in values[:-1]] + \
        [values[-1]]


def _non_finite_rows(s: Tensor, t: Tensor) -> Optional[Tensor]:
    """``(L,)`` rows with a non-finite logit, or None if all are finite and
    within +-1e38 (the common case: four reductions, which propagate NaN;
    aminmax would copy a transposed chunk first)."""
    bounds = torch.stack([s.amax(), t.amax(), -s.amin(), -t.amin()])
    if bool(bounds.amax() <= _CLAMP):
        return None
    return ~(torch.isfinite(s).all(dim=0) & torch.isfinite(t).all(dim=0))


def _chunk_loss_grad(s: Tensor, t: Tensor, labels: Optional[Tensor],
                     row_k: Optional[Tensor], spec: PartitionSpec,
                     grad_scale: Optional[Tensor]):
    """Loss rows and gradient of one ``(C, L)`` chunk (torch path).

    Args:
        s, t: ``(C, L)`` float32/64 student / teacher logits (class dim
            first).
        labels: ``(L,)`` labels (label partitions) or None.
        row_k: ``(L,)`` per-row cut (adaptive) or None.
        spec: the partition.
        grad_scale: ``(L,)`` per-row factor of the gradient
            (``T * scale / n`` for valid rows, 0 otherwise), or None for no
            gradient.

    Returns:
        tuple: ``(rows, grad)``: ``(L,)`` losses without ``T**2`` (NaN
        where a logit is not finite) and the ``(C, L)`` gradient (or None;
        NaN where a logit is not finite and ``grad_scale`` is not 0).
    """
    non_finite = _non_finite_rows(s, t)
    if non_finite is not None:
        # Such rows compute on zeros (their results are replaced below), so
        # an ignored one keeps a zero gradient; logits beyond +-1e38 rank
        # and weigh as +-1e38.
        s = torch.where(non_finite, 0., s).clamp_(-_CLAMP, _CLAMP)
        t = torch.where(non_finite, 0., t).clamp_(-_CLAMP, _CLAMP)
    rows, grad = _finite_chunk_loss_grad(s, t, labels, row_k, spec,
                                         grad_scale)
    if non_finite is not None:
        rows = torch.where(non_finite, float('nan'), rows)
        if grad is not None:
            grad = torch.where(non_finite & (grad_scale != 0), float('nan'),
                               grad)
    return rows, grad


def _finite_chunk_loss_grad(s, t, labels, row_k, spec, grad_scale):
    inv_t = 1.0 / spec.temperature
    masks = _group_masks(t, labels, row_k, spec)
    w = spec.leaf_weights
    if masks is None:
        max_s, max_t = [s.amax(dim=0)], [t.amax(dim=0)]
        x_s, x_t = s - max_s[0], t - max_t[0]
    else:
        # Each group's log-softmax relative to the group's own max. An empty
        # group's max is junk (~-3e38): it borrows a real one so no shift
        # loses precision (no class uses it, its mass is 0 anyway).
        max_s = [_group_max(s, m) for m in masks]
        max_t = [_group_max(t, m) for m in masks]
        present = [m.amax(dim=0) > 0 for m in masks]
        if not all(bool(p.all()) for p in present):
            s_max, t_max = s.amax(dim=0), t.amax(dim=0)
            for g in range(len(masks)):
                max_s[g] = torch.where(present[g], max_s[g], s_max)
                max_t[g] = torch.where(present[g], max_t[g], t_max)
        x_s = s - _per_class(masks, max_s)
        x_t = t - _per_class(masks, max_t)
        max_s, max_t = _effective(max_s), _effective(max_t)
    exp_s = x_s.mul_(inv_t).exp()
    exp_t = x_t.mul_(inv_t).exp()
    # exp(x_t) (x_t - x_s); finite logits: 0 where exp_t underflows to 0
    weighted_gap = (x_t - x_s).mul_(exp_t)

    def group_sum(x):
        if masks is None:
            return [x.sum(dim=0)]
        return [(x * m).sum(dim=0) for m in masks]

    sum_s, sum_t = group_sum(exp_s), group_sum(exp_t)
    gap_sums = group_sum(weighted_gap)
    forward_share = {'forward': 1., 'reverse': 0., 'both': 0.5}[spec.kl_type]
    reverse = None
    if spec.kl_type != 'forward':
        reverse = _reverse_leaves(x_s, x_t, exp_s, sum_s, sum_t, masks,
                                  group_sum)
    rows = 0.
    for g in range(spec.num_groups):
        leaf = gap_sums[g] / sum_t[g] - sum_t[g].log() + sum_s[g].log()
        leaf = torch.where(sum_t[g] > 0, leaf, 0.)
        if reverse is not None:
            leaf = forward_share * leaf + (1. - forward_share) * reverse[1][g]
        rows = rows + w[g] * leaf
    big_p = big_q = None
    if masks is not None:
        # Group masses in log space: u_g = (m_g - M) / T + log Z_g.
        max_s, max_t = torch.stack(max_s), torch.stack(max_t)
        log_p = (max_s - max_s.amax(0)) * inv_t + torch.stack(sum_s).log()
        log_q = (max_t - max_t.amax(0)) * inv_t + torch.stack(sum_t).log()
        log_p = log_p - log_p.logsumexp(0)
        log_q = log_q - log_q.logsumexp(0)
        big_p, big_q = log_p.exp(), log_q.exp()
        group_kl = torch.where(big_q > 0, big_q * (log_q - log_p), 0.).sum(0)
        rows = rows + spec.group_weight * group_kl
    if grad_scale is None:
        return rows, None
    if reverse is not None:
        # d KL(p^g || q^g) / ds_i = p^g_i (r_i - R_g) / T, r_i = log p^g_i -
        # log q^g_i and R_g the group's reverse KL; T^2 / T = T is in
        # grad_scale. Taken before exp_s is overwritten below.
        log_ratio, leaves = reverse
        coef_r = [torch.where(sum_s[g] > 0, (1. - forward_share) * w[g] *
                              grad_scale / sum_s[g], 0.)
                  for g in range(spec.num_groups)]
        reverse_grad = exp_s * _values_per_class(masks, coef_r) * (
            log_ratio - _values_per_class(masks, leaves))
        w = [forward_share * v for v in w]
    coef_p, coef_q = [], []
    for g in range(spec.num_groups):
        c = w[g] if big_p is None else \
            spec.group_weight * (big_p[g] - big_q[g]) + w[g]
        coef_p.append(torch.where(sum_s[g] > 0, c * grad_scale / sum_s[g], 0.))
        coef_q.append(
            torch.where(sum_t[g] > 0, w[g] * grad_scale / sum_t[g], 0.))
    if masks is None:
        grad = torch.addcmul(exp_s * coef_p[0], exp_t, -coef_q[0])
    else:
        grad = exp_s.mul_(_per_class(masks, coef_p))
        grad.addcmul_(exp_t, _per_class(masks, coef_q), value=-1.)
    return rows, grad if reverse is None else grad.add_(reverse_grad)


def _values_per_class(masks: Optional[list], values: list) -> Tensor:
    """``(C, L)`` (or ``(L,)`` for one group): each class's group value."""
    return values[0] if masks is None else _per_class(masks, values)


def _reverse_leaves(x_s, x_t, exp_s, sum_s, sum_t, masks, group_sum):
    """The within-group reverse KLs ``KL(p^g || q^g)`` of a chunk.

    ``x_s``, ``x_t`` are the logits over T relative to their group's max and
    ``exp_s = exp(x_s)``, so ``log p^g_i = xs_i - log zs_g``.

    Returns:
        tuple: ``(log_ratio, leaves)``: the ``(C, L)`` ``log p^g_i - log
        q^g_i`` and one ``(L,)`` KL per group (0 for an empty group).
    """
    # log sum_t - log sum_s (0 for an empty group: no class reads it).
    log_z = [torch.where(s > 0, t.log() - s.log(), 0.)
             for s, t in zip(sum_s, sum_t)]
    log_ratio = (x_s - x_t).add_(_values_per_class(masks, log_z))
    sums = group_sum(exp_s * log_ratio)
    leaves = [torch.where(z > 0, b / z, 0.) for b, z in zip(sums, sum_s)]
    return log_ratio, leaves


def _classes_first(x: Tensor) -> Tensor:
    """``(b, C, L)`` -> ``(C, b * L)``: a view for one image, else a copy."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def forward(student: Tensor, teacher: Tensor, labels: Optional[Tensor],
            row_k: Optional[Tensor], grad: Optional[Tensor],
            spec: PartitionSpec, scale: float, ignore_index: Optional[int],
            mean: bool) -> Tensor:
    """Torch path over ``(B, C, P)`` views, chunk by chunk; fills ``grad``.

    Args:
        student, teacher: logits viewed as ``(B, C, P)``.
        labels: ``(B, P)`` labels or None.
        row_k: ``(B, P)`` per-row cut of an adaptive spec, or None to
            compute it here chunk by chunk.
        grad: ``(B, C, P)`` output for ``dLoss/ds`` or None.
        spec: the partition.
        scale: multiplier of the loss (loss_weight).
        ignore_index: label of skipped rows (None: none skipped).
        mean: divide by the number of valid rows (else: sum).

    Returns:
        Tensor: the 0-dim loss, float32 (float64 for float64 inputs).
    """
    B, C, P = student.shape
    dtype = functional.compute_dtype(student)
    valid = None
    if labels is not None and ignore_index is not None:
        valid = labels != ignore_index
    if mean:
        count = B * P if valid is None else int(valid.sum())
        inv_n = 1. / max(count, 1)
    else:
        inv_n = 1.
    step = max(1, _CHUNK_ELEMENTS // C)
    # Whole images per chunk when they fit: small maps then run a few large
    # ops instead of many small ones (per-op overhead dominated them).
    images = max(1, step // P)
    total = torch.zeros((), dtype=dtype, device=student.device)
    for b0 in range(0, B, images):
        b1 = min(B, b0 + images)
        for p0 in range(0, P, step):
            sl = slice(p0, p0 + step)
            s = _classes_first(student[b0:b1, :, sl]).to(dtype)
            t = _classes_first(teacher[b0:b1, :, sl]).to(dtype)
            chunk_valid = None if valid is None else \
                valid[b0:b1, sl].reshape(-1)
            chunk_labels = None
            if spec.rule == GroupRule.LABEL:
                chunk_labels = labels[b0:b1, sl].reshape(-1)
                if chunk_valid is not None:
                    # An ignored row's label (255) is no class: class 0
                    # instead keeps its groups non-empty, off the slower
                    # empty-group path (the row is masked anyway).
                    chunk_labels = torch.where(chunk_valid, chunk_labels, 0)
            if row_k is not None:
                k = row_k[b0:b1, sl].reshape(-1)
            elif spec.adaptive is not None:  # from this chunk's teacher only
                k = functional.adaptive_k(t.t(), spec.adaptive.mass,
                                          spec.temperature,
                                          spec.adaptive.max_k)
            else:
                k = None
            grad_scale = None
            if grad is not None:
                grad_scale = s.new_full(s.shape[1:],
                                        spec.temperature * scale * inv_n)
                if chunk_valid is not None:
                    grad_scale = torch.where(chunk_valid, grad_scale, 0.)
            rows, chunk_grad = _chunk_loss_grad(s, t, chunk_labels, k, spec,
                                                grad_scale)
            if chunk_valid is not None:
                rows = torch.where(chunk_valid, rows, 0.)
            total += rows.sum()
            if chunk_grad is not None:
                grad[b0:b1, :, sl] = chunk_grad.reshape(C, b1 - b0, -1) \
                    .transpose(0, 1)
    return total * (spec.temperature**2 * scale * inv_n)
