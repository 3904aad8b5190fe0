"""The fused loss on any device in plain PyTorch (see ``fused.py``).

Chunks of pixels, each a few ``(C, L)`` temporaries; nothing logits-sized
besides the gradient. Any :class:`~.partition.PartitionSpec`: any number of
cut points, a per-row cut, or the label partition. Same numerics as the
plain implementation: float32 accumulation (float64 inputs stay float64),
each group's log-softmax relative to the group's own max, no masking
constant, no clamping of masses, top ranks ties to the lowest class index.
A row with a non-finite logit has a NaN loss (and gradient) if it is valid
and 0 if it is ignored.
"""
from typing import List, Optional

import torch
from torch import Tensor

from . import functional as F
from .partition import GroupRule, PartitionSpec

# Pixels per chunk are chosen so a chunk holds ~2**18 logits: the ~15
# chunk-sized temporaries are a fixed ~15 MiB working set (fp32) whatever the
# input size, besides the one logits-sized tensor, the gradient.
_CHUNK_ELEMENTS = 1 << 18


# On CPU, torch.where, boolean ops, cumsum and topk over a strided dim run
# 10-60x slower than float arithmetic, so groups are float 0/1 masks and
# every per-class step is a multiply-add or a max/sum reduction. Logits
# within +-1e38 (checked per chunk; beyond, they are clamped) leave 3e38 below
# every key and a "minus infinity" that keeps 0 * it finite.
_BIG = 3.0e38
_CLAMP = 1.0e38


def _group_masks(t: Tensor, labels: Optional[Tensor],
                 row_k: Optional[Tensor],
                 spec: PartitionSpec) -> Optional[List[Tensor]]:
    """Float 0/1 masks ``(C, L)``, one per group (None for one group):
    ``functional.group_masks`` on the chunk."""
    masks = F.group_masks(
        spec, t[None], None if labels is None else labels[None],
        None if row_k is None else row_k[None])
    return None if masks is None else [m[0] for m in masks]


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
        ms, mt = [s.amax(dim=0)], [t.amax(dim=0)]
        xs, xt = s - ms[0], t - mt[0]
    else:
        # Each group's log-softmax relative to the group's own max. An empty
        # group's max is junk (~-3e38): it borrows a real one so no shift
        # loses precision (no class uses it, its mass is 0 anyway).
        ms = [_group_max(s, m) for m in masks]
        mt = [_group_max(t, m) for m in masks]
        present = [m.amax(dim=0) > 0 for m in masks]
        if not all(bool(p.all()) for p in present):
            s_max, t_max = s.amax(dim=0), t.amax(dim=0)
            for g in range(len(masks)):
                ms[g] = torch.where(present[g], ms[g], s_max)
                mt[g] = torch.where(present[g], mt[g], t_max)
        xs = s - _per_class(masks, ms)
        xt = t - _per_class(masks, mt)
        ms, mt = _effective(ms), _effective(mt)
    es = xs.mul_(inv_t).exp()
    et = xt.mul_(inv_t).exp()
    etd = (xt - xs).mul_(et)  # finite logits: 0 where et underflows to 0

    def group_sum(x):
        if masks is None:
            return [x.sum(dim=0)]
        return [(x * m).sum(dim=0) for m in masks]

    zs, zt, a = group_sum(es), group_sum(et), group_sum(etd)
    forward_share = {'forward': 1., 'reverse': 0., 'both': 0.5}[spec.kl_type]
    reverse = None
    if spec.kl_type != 'forward':
        reverse = _reverse_leaves(xs, xt, es, zs, zt, masks, group_sum)
    rows = 0.
    for g in range(spec.num_groups):
        leaf = a[g] / zt[g] - zt[g].log() + zs[g].log()
        leaf = torch.where(zt[g] > 0, leaf, 0.)
        if reverse is not None:
            leaf = forward_share * leaf + (1. - forward_share) * reverse[1][g]
        rows = rows + w[g] * leaf
    big_p = big_q = None
    if masks is not None:
        # Group masses in log space: u_g = (m_g - M) / T + log Z_g.
        ms, mt = torch.stack(ms), torch.stack(mt)
        log_p = (ms - ms.amax(0)) * inv_t + torch.stack(zs).log()
        log_q = (mt - mt.amax(0)) * inv_t + torch.stack(zt).log()
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
        # grad_scale. Taken before es is overwritten below.
        log_ratio, leaves = reverse
        coef_r = [torch.where(zs[g] > 0, (1. - forward_share) * w[g] *
                              grad_scale / zs[g], 0.)
                  for g in range(spec.num_groups)]
        reverse_grad = es * _values_per_class(masks, coef_r) * (
            log_ratio - _values_per_class(masks, leaves))
        w = [forward_share * v for v in w]
    coef_p, coef_q = [], []
    for g in range(spec.num_groups):
        c = w[g] if big_p is None else \
            spec.group_weight * (big_p[g] - big_q[g]) + w[g]
        coef_p.append(torch.where(zs[g] > 0, c * grad_scale / zs[g], 0.))
        coef_q.append(torch.where(zt[g] > 0, w[g] * grad_scale / zt[g], 0.))
    if masks is None:
        grad = torch.addcmul(es * coef_p[0], et, -coef_q[0])
    else:
        grad = es.mul_(_per_class(masks, coef_p))
        grad.addcmul_(et, _per_class(masks, coef_q), value=-1.)
    return rows, grad if reverse is None else grad.add_(reverse_grad)


def _values_per_class(masks: Optional[list], values: list) -> Tensor:
    """``(C, L)`` (or ``(L,)`` for one group): each class's group value."""
    return values[0] if masks is None else _per_class(masks, values)


def _reverse_leaves(xs, xt, es, zs, zt, masks, group_sum):
    """The within-group reverse KLs ``KL(p^g || q^g)`` of a chunk.

    ``xs``, ``xt`` are the logits over T relative to their group's max and
    ``es = exp(xs)``, so ``log p^g_i = xs_i - log zs_g``.

    Returns:
        tuple: ``(log_ratio, leaves)``: the ``(C, L)`` ``log p^g_i - log
        q^g_i`` and one ``(L,)`` KL per group (0 for an empty group).
    """
    # log zt - log zs (0 for an empty group: no class reads it).
    log_z = [torch.where(s > 0, t.log() - s.log(), 0.)
             for s, t in zip(zs, zt)]
    log_ratio = (xs - xt).add_(_values_per_class(masks, log_z))
    sums = group_sum(es * log_ratio)
    leaves = [torch.where(z > 0, b / z, 0.) for b, z in zip(sums, zs)]
    return log_ratio, leaves


def _classes_first(x3: Tensor) -> Tensor:
    """``(b, C, L)`` -> ``(C, b * L)``: a view for one image, else a copy."""
    return x3.transpose(0, 1).reshape(x3.shape[1], -1)


def forward(s3: Tensor, t3: Tensor, labels2: Optional[Tensor],
            row_k: Optional[Tensor], grad3: Optional[Tensor],
            spec: PartitionSpec, scale: float, ignore_index: Optional[int],
            mean: bool) -> Tensor:
    """Torch path over ``(B, C, P)`` views, chunk by chunk; fills grad3.

    Args:
        s3, t3: student / teacher logits viewed as ``(B, C, P)``.
        labels2: ``(B, P)`` labels or None.
        row_k: ``(B, P)`` per-row cut of an adaptive spec, or None to
            compute it here chunk by chunk.
        grad3: ``(B, C, P)`` output for ``dLoss/ds`` or None.
        spec: the partition.
        scale: multiplier of the loss (loss_weight).
        ignore_index: label of skipped rows (None: none skipped).
        mean: divide by the number of valid rows (else: sum).

    Returns:
        Tensor: the 0-dim loss, float32 (float64 for float64 inputs).
    """
    B, C, P = s3.shape
    dtype = F.compute_dtype(s3)
    valid2 = None
    if labels2 is not None and ignore_index is not None:
        valid2 = labels2 != ignore_index
    if mean:
        count = B * P if valid2 is None else int(valid2.sum())
        inv_n = 1. / max(count, 1)
    else:
        inv_n = 1.
    step = max(1, _CHUNK_ELEMENTS // C)
    # Whole images per chunk when they fit: small maps then run a few large
    # ops instead of many small ones (per-op overhead dominated them).
    images = max(1, step // P)
    total = torch.zeros((), dtype=dtype, device=s3.device)
    for b0 in range(0, B, images):
        b1 = min(B, b0 + images)
        for p0 in range(0, P, step):
            sl = slice(p0, p0 + step)
            s = _classes_first(s3[b0:b1, :, sl]).to(dtype)
            t = _classes_first(t3[b0:b1, :, sl]).to(dtype)
            valid = None if valid2 is None else valid2[b0:b1, sl].reshape(-1)
            labels = None
            if spec.rule == GroupRule.LABEL:
                labels = labels2[b0:b1, sl].reshape(-1)
                if valid is not None:
                    # An ignored row's label (255) is no class: class 0
                    # instead keeps its groups non-empty, off the slower
                    # empty-group path (the row is masked anyway).
                    labels = torch.where(valid, labels, 0)
            if row_k is not None:
                k = row_k[b0:b1, sl].reshape(-1)
            elif spec.adaptive is not None:  # from this chunk's teacher only
                k = F.adaptive_k(t.t(), spec.adaptive.mass, spec.temperature,
                                 spec.adaptive.max_k)
            else:
                k = None
            grad_scale = None
            if grad3 is not None:
                grad_scale = s.new_full(s.shape[1:],
                                        spec.temperature * scale * inv_n)
                if valid is not None:
                    grad_scale = torch.where(valid, grad_scale, 0.)
            rows, grad = _chunk_loss_grad(s, t, labels, k, spec, grad_scale)
            if valid is not None:
                rows = torch.where(valid, rows, 0.)
            total += rows.sum()
            if grad is not None:
                grad3[b0:b1, :, sl] = grad.reshape(C, b1 - b0, -1) \
                    .transpose(0, 1)
    return total * (spec.temperature**2 * scale * inv_n)
