"""The fused loss on any device in plain PyTorch (see ``fused.py``).

Chunks of pixels, each a few ``(C, L)`` temporaries; nothing logits-sized
besides the gradient. Same numerics as the plain implementation: float32
accumulation (float64 inputs stay float64), each group's log-softmax relative
to the group's own max, no masking constant, no clamping of masses, top-k
ties to the lowest class index.
"""
from typing import Optional

import torch
from torch import Tensor

from .fused import KIND_LABEL, KIND_ONE_GROUP, KIND_TOP1_TOPK, KIND_TOPK, \
    Partition

# Pixels per chunk are chosen so a chunk holds ~2**18 logits: the ~15
# chunk-sized temporaries are a fixed ~15 MiB working set (fp32) whatever the
# input size, besides the one logits-sized tensor, the gradient.
_CHUNK_ELEMENTS = 1 << 18


# Plain-PyTorch path. On CPU, torch.where, boolean ops, cumsum and topk over a
# strided dim run 10-60x slower than float arithmetic, so groups are float 0/1
# masks and every per-class step is a multiply-add or a max/sum reduction.
# Logits beyond +-1e38 are clamped (they rank and weigh as +-1e38), so 3e38
# is below every key and a "minus infinity" that keeps 0 * it finite.
_BIG = 3.0e38
_CLAMP = 1.0e38


def _topk_masks(t: Tensor, part: Partition) -> list:
    """Float masks of the top-k groups, ties to the lowest class index.

    With the classes contiguous ((N, C) rows), usually the classes at or
    above the k-th largest value (from ``torch.topk``) are exactly k, and
    they are the top-k whatever the tie rule. Otherwise (maps, or a tie
    across the k-th place) K rounds: take the max of the remaining keys and,
    of the classes equal to it, the lowest-indexed one (``1 + sign(key -
    max)`` marks the ties, the largest ``C - index`` among them is the
    first); the picked class drops to ``-3e38``, below every (clamped)
    logit. Either way exactly a stable descending sort's top-k.

    Returns:
        list: ``[top-k]`` (KIND_TOPK) or ``[top-1, top-2..k]``.
    """
    if t.stride(0) != 1:  # topk over a strided class dim is slow on CPU
        return _topk_masks_by_rounds(t, part)
    ks = [part.k] if part.kind == KIND_TOPK else [1, part.k]
    masks = []
    for k in ks:
        kth = torch.topk(t, k, dim=0, sorted=False).values.amin(dim=0)
        at_or_above = (t - kth).sign_().add_(1.).clamp_(max=1.)
        if not bool((at_or_above.sum(dim=0) == k).all()):
            return _topk_masks_by_rounds(t, part)
        masks.append(at_or_above)
    if part.kind == KIND_TOP1_TOPK:
        masks[1] -= masks[0]
    return masks


def _topk_masks_by_rounds(t: Tensor, part: Partition) -> list:
    num_classes = t.shape[0]
    reverse = torch.arange(num_classes, 0, -1, dtype=t.dtype,
                           device=t.device)[:, None]
    key = t.clone()
    picked = []
    for _ in range(part.k):
        hit = (key - key.amax(dim=0)).sign_().add_(1.)  # the max and ties
        if not bool((hit.sum(dim=0) == 1).all()):
            first = (hit * reverse).amax(dim=0)
            hit.mul_((reverse - first).sign_().add_(1.))
        # Picked keys become key - (key + 3e38) ~ -3e38.
        key.addcmul_(hit, key + _BIG, value=-1.)
        picked.append(hit)
    top = torch.stack(picked).sum(0) if part.k > 1 else picked[0]
    if part.kind == KIND_TOPK:
        return [top]
    return [picked[0], top - picked[0]]


def _group_masks(t: Tensor, labels: Optional[Tensor],
                 part: Partition) -> Optional[list]:
    """Float 0/1 masks ``(C, L)``, one per group (None for one group)."""
    if part.kind == KIND_ONE_GROUP:
        return None
    if part.kind == KIND_LABEL:
        classes = torch.arange(t.shape[0], dtype=t.dtype, device=t.device)
        target = (classes[:, None] - labels[None, :].to(t.dtype)).abs_() \
            .neg_().sign_().add_(1.)
        masks = [target]
    else:
        masks = _topk_masks(t, part)
    rest = 1. - masks[0]
    for mask in masks[1:]:
        rest -= mask
    return masks + [rest]


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


def _chunk_loss_grad(s: Tensor, t: Tensor, labels: Optional[Tensor],
                     part: Partition, grad_scale: Optional[Tensor]):
    """Loss rows and gradient of one ``(C, L)`` chunk (torch path).

    Args:
        s, t: ``(C, L)`` float32/64 student / teacher logits (class dim
            first).
        labels: ``(L,)`` labels (KIND_LABEL) or None.
        part: the partition.
        grad_scale: ``(L,)`` per-row factor of the gradient
            (``T * scale / n`` for valid rows, 0 otherwise), or None for no
            gradient.

    Returns:
        tuple: ``(rows, grad)``: ``(L,)`` losses without ``T**2`` and the
        ``(C, L)`` gradient (or None).
    """
    inv_t = 1.0 / part.temperature
    s = s.clamp(-_CLAMP, _CLAMP)
    t = t.clamp(-_CLAMP, _CLAMP)
    masks = _group_masks(t, labels, part)
    w = part.group_weights
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
    rows = 0.
    for g in range(part.num_groups):
        leaf = a[g] / zt[g] - zt[g].log() + zs[g].log()
        rows = rows + w[g] * torch.where(zt[g] > 0, leaf, 0.)
    big_p = big_q = None
    if masks is not None:
        # Group masses in log space: u_g = (m_g - M) / T + log Z_g.
        ms, mt = torch.stack(ms), torch.stack(mt)
        log_p = (ms - ms.amax(0)) * inv_t + torch.stack(zs).log()
        log_q = (mt - mt.amax(0)) * inv_t + torch.stack(zt).log()
        log_p = log_p - log_p.logsumexp(0)
        log_q = log_q - log_q.logsumexp(0)
        big_p, big_q = log_p.exp(), log_q.exp()
        binary = torch.where(big_q > 0, big_q * (log_q - log_p), 0.).sum(0)
        rows = rows + part.binary_weight * binary
    if grad_scale is None:
        return rows, None
    coef_p, coef_q = [], []
    for g in range(part.num_groups):
        c = w[g] if big_p is None else \
            part.binary_weight * (big_p[g] - big_q[g]) + w[g]
        coef_p.append(torch.where(zs[g] > 0, c * grad_scale / zs[g], 0.))
        coef_q.append(torch.where(zt[g] > 0, w[g] * grad_scale / zt[g], 0.))
    if masks is None:
        return rows, torch.addcmul(es * coef_p[0], et, -coef_q[0])
    grad = es.mul_(_per_class(masks, coef_p))
    return rows, grad.addcmul_(et, _per_class(masks, coef_q), value=-1.)


def _classes_first(x3: Tensor) -> Tensor:
    """``(b, C, L)`` -> ``(C, b * L)``: a view for one image, else a copy."""
    return x3.transpose(0, 1).reshape(x3.shape[1], -1)


def forward(s3: Tensor, t3: Tensor, labels2: Optional[Tensor],
            grad3: Optional[Tensor], part: Partition, scale: float,
            ignore_index: int, mean: bool) -> Tensor:
    """Torch path over ``(B, C, P)`` views, chunk by chunk; fills grad3."""
    B, C, P = s3.shape
    dtype = torch.float64 if s3.dtype == torch.float64 else torch.float32
    valid2 = None if labels2 is None else labels2 != ignore_index
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
            if part.kind == KIND_LABEL:
                # DKD needs a class id for every valid row, as
                # functional.dkd_loss (ignored rows are masked below).
                labels = labels2[b0:b1, sl].reshape(-1).clamp(0, C - 1)
            grad_scale = None
            if grad3 is not None:
                grad_scale = s.new_full(s.shape[1:],
                                        part.temperature * scale * inv_n)
                if valid is not None:
                    grad_scale = torch.where(valid, grad_scale, 0.)
            rows, grad = _chunk_loss_grad(s, t, labels, part, grad_scale)
            if valid is not None:
                rows = torch.where(valid, rows, 0.)
            total += rows.sum()
            if grad is not None:
                grad3[b0:b1, :, sl] = grad.reshape(C, b1 - b0, -1) \
                    .transpose(0, 1)
    return total * (part.temperature**2 * scale * inv_n)
