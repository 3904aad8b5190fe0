"""Fused partitioned-KL loss: mean loss and closed-form gradient in one pass.

Same function as ``functional.partitioned_kl`` followed by ``reduce_rows``
(``'mean'`` over valid rows, or ``'sum'``), for the four partitions the
registered losses use (KD, DKD, GDKD, GDKD3), as one autograd function:

* forward computes the loss *and* ``dLoss/ds`` (REFERENCE.md section 1),

      dL/ds_i = T [w_bin p^g_i (P_g - Q_g) + w_g (p^g_i - q^g_i)] / n_valid,

  and keeps only that gradient (one logits-sized tensor);
* backward multiplies it by the incoming gradient, in place, and returns it;
  an incoming gradient of exactly 1 (``loss.backward()`` on a loss whose
  weight was passed as ``scale``) costs no pass over it. A second backward
  through a retained graph recomputes the gradient from the saved inputs.

Inputs are ``(N, C)`` rows or ``(B, C, *spatial)`` maps, read in place as
``(B, C, P)`` views (no permuted copy). Two implementations:

* ``'triton'`` (CUDA tensors, when triton imports): one kernel launch per
  forward (two with an ignore mask: one counts valid pixels) and one, which
  reads nothing when the incoming gradient is 1, per backward; a
  thread-per-pixel kernel for maps, a class-tile kernel for rows
  (``fused_triton``).
* ``'torch'`` (any device): chunks of pixels, each a few ``(C, L)``
  temporaries; nothing logits-sized besides the gradient.

Both follow the plain implementation's numerics: float32 accumulation (float64
inputs stay float64 in the torch path), each group's log-softmax relative to
the group's own max, no masking constant, no clamping, top-k ties to the
lowest class index. The gradient has the student's dtype.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

try:
    from . import fused_triton
except ImportError:  # triton is optional: the torch path covers every case
    fused_triton = None

__all__ = ['Partition', 'fused_partitioned_kl', 'triton_available']

KIND_ONE_GROUP, KIND_LABEL, KIND_TOPK, KIND_TOP1_TOPK = 0, 1, 2, 3
_NUM_GROUPS = (1, 2, 2, 3)
# Pixels per torch-path chunk are chosen so a chunk holds ~2**18 logits: the
# ~15 chunk-sized temporaries are a fixed ~15 MiB working set (fp32) whatever
# the input size, besides the one logits-sized tensor, the gradient.
_CHUNK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class Partition:
    """Which classes form the groups, and the weights of the KL terms.

    Attributes:
        kind (int): ``KIND_ONE_GROUP`` (KD), ``KIND_LABEL`` ({label} vs rest,
            DKD), ``KIND_TOPK`` (teacher top-k vs rest, GDKD) or
            ``KIND_TOP1_TOPK`` (top-1 / top-2..k / rest, GDKD3).
        k (int): top-k size (top-k kinds only).
        binary_weight (float): weight of ``KL(Q || P)``.
        group_weights (tuple): one weight per group's leaf KL.
        temperature (float): T.
    """
    kind: int
    k: int = 1
    binary_weight: float = 0.
    group_weights: Tuple[float, ...] = (1., )
    temperature: float = 1.

    def __post_init__(self):
        if len(self.group_weights) != _NUM_GROUPS[self.kind]:
            raise ValueError(
                f'partition kind {self.kind} has {_NUM_GROUPS[self.kind]} '
                f'groups, got weights {self.group_weights}')
        if self.temperature <= 0:
            raise ValueError(
                f'temperature must be > 0, got {self.temperature}')

    @property
    def num_groups(self) -> int:
        return _NUM_GROUPS[self.kind]

    @property
    def weights4(self) -> Tuple[float, float, float, float]:
        """``(w_bin, w_g0, w_g1, w_g2)``, unused groups 0."""
        groups = tuple(self.group_weights) + (0., ) * (3 - self.num_groups)
        return (self.binary_weight, ) + groups


def triton_available() -> bool:
    """Whether the Triton kernels can be used (triton imported)."""
    return fused_triton is not None


def _as_bcp(x: Tensor) -> Tensor:
    """``(N, C)`` -> ``(1, C, N)``; ``(B, C, *spatial)`` -> ``(B, C, P)``.

    Views whenever the layout allows (contiguous or channels-last maps, any
    ``(N, C)``), so the logits are read in place.
    """
    if x.dim() == 2:
        return x.t().unsqueeze(0)
    return x.reshape(x.shape[0], x.shape[1], -1)


def _new_grad(student: Tensor) -> Tuple[Tensor, Tensor]:
    """An uninitialised gradient in the student's shape and its (B,C,P) view.
    """
    grad = torch.empty(student.shape, dtype=student.dtype,
                       device=student.device)
    return grad, _as_bcp(grad)


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


def _torch_forward(s3: Tensor, t3: Tensor, labels2: Optional[Tensor],
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


def _compute(student: Tensor, teacher: Tensor, labels: Optional[Tensor],
             part: Partition, scale: float, ignore_index: int, mean: bool,
             backend: str, need_grad: bool, config=None):
    s3, t3 = _as_bcp(student), _as_bcp(teacher)
    labels2 = None
    if labels is not None:
        labels2 = labels.reshape(s3.shape[0], s3.shape[2])
    grad = grad3 = None
    if need_grad:
        grad, grad3 = _new_grad(student)
    if backend == 'triton':
        loss = fused_triton.launch(
            s3, t3, labels2, grad3, part.kind, part.num_groups, part.k,
            part.weights4,
            part.temperature, scale, ignore_index, mean, config)
    else:
        loss = _torch_forward(s3, t3, labels2, grad3, part, scale,
                              ignore_index, mean)
    return loss, grad


class FusedPartitionedKL(torch.autograd.Function):
    """Autograd function; call through :func:`fused_partitioned_kl`."""

    @staticmethod
    def forward(ctx, student, teacher, labels, part, scale, ignore_index,
                mean, backend, config):
        loss, grad = _compute(student, teacher, labels, part, scale,
                              ignore_index, mean, backend,
                              ctx.needs_input_grad[0], config)
        ctx.grad = grad
        ctx.args = (part, scale, ignore_index, mean, backend, config)
        ctx.save_for_backward(student, teacher, labels)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        grad, ctx.grad = ctx.grad, None
        part, scale, ignore_index, mean, backend, config = ctx.args
        if grad is None:  # a second backward through a retained graph
            student, teacher, labels = ctx.saved_tensors
            _, grad = _compute(student, teacher, labels, part, scale,
                               ignore_index, mean, backend, True, config)
        if backend == 'triton':
            fused_triton.scale_(grad, grad_output.float())
        elif grad_output.item() != 1:
            grad.mul_(grad_output.to(grad.dtype))
        return grad, None, None, None, None, None, None, None, None


def fused_partitioned_kl(student: Tensor,
                         teacher: Tensor,
                         part: Partition,
                         labels: Optional[Tensor] = None,
                         ignore_index: int = 255,
                         scale: float = 1.0,
                         reduction: str = 'mean',
                         backend: Optional[str] = None,
                         config=None) -> Tensor:
    """``scale * reduce(partitioned KL rows)`` with a fused gradient.

    Args:
        student (Tensor): ``(N, C)`` or ``(B, C, *spatial)`` logits; float16,
            bfloat16, float32 (float64 on the torch path).
        teacher (Tensor): same shape (any float dtype); not differentiated.
        part (Partition): groups and weights.
        labels (Tensor, optional): ``(N,)`` or ``(B, *spatial)`` integer
            labels: rows equal to ``ignore_index`` are skipped; for
            ``KIND_LABEL`` they also define the partition (required then).
        ignore_index (int): label of skipped rows.
        scale (float): multiplier (a loss weight); folding it in here keeps
            the incoming gradient at 1 so backward needs no pass.
        reduction (str): ``'mean'`` over valid rows or ``'sum'``.
        backend (str, optional): ``'triton'`` or ``'torch'``; default: triton
            for CUDA tensors when available, else torch.
        config (tuple, optional): Triton kernel and block override
            (``fused_triton.launch``), e.g. ``('tile', )`` or
            ``('class_loop', 128, 4)``.

    Returns:
        Tensor: 0-dim float32 loss (float64 for float64 torch-path inputs).
    """
    if student.shape != teacher.shape:
        raise ValueError('student and teacher logits must have the same '
                         f'shape, got {tuple(student.shape)} and '
                         f'{tuple(teacher.shape)}')
    if student.dim() < 2:
        raise ValueError('expected (N, C) or (B, C, *spatial) logits, got '
                         f'shape {tuple(student.shape)}')
    if reduction not in ('mean', 'sum'):
        raise ValueError("the fused loss reduces with 'mean' or 'sum', got "
                         f'{reduction!r}')
    num_classes = student.shape[1]
    if part.kind in (KIND_TOPK, KIND_TOP1_TOPK) and \
            not 1 <= part.k <= num_classes:
        raise ValueError(f'k must be in [1, {num_classes}] (the number of '
                         f'classes), got {part.k}')
    if part.kind == KIND_LABEL and labels is None:
        raise ValueError('a label partition (DKD) needs labels')
    if labels is not None:
        labels = labels.reshape(-1)
        rows = student.shape[0] if student.dim() == 2 else \
            student.numel() // num_classes
        if labels.numel() != rows:
            raise ValueError(f'{labels.numel()} labels for {rows} rows')
    if backend is None:
        backend = 'triton' if student.is_cuda and triton_available() and \
            student.dtype != torch.float64 else 'torch'
    if backend == 'triton':
        if not triton_available():
            raise RuntimeError('backend="triton" needs the triton package')
        if student.numel() >= 2**31:
            raise ValueError('the Triton path indexes with int32: use '
                             'backend="torch" for >= 2**31 logits')
    elif backend != 'torch':
        raise ValueError(f"backend must be 'triton' or 'torch', got "
                         f'{backend!r}')
    return FusedPartitionedKL.apply(student, teacher.detach(), labels, part,
                                    float(scale), int(ignore_index),
                                    reduction == 'mean', backend, config)
