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

from .partition import GroupRule, PartitionSpec

try:
    from . import fused_triton
except ImportError:  # triton is optional: the torch path covers every case
    fused_triton = None

__all__ = ['fused_partitioned_kl', 'fused_supports', 'triton_available']

KIND_ONE_GROUP, KIND_LABEL, KIND_TOPK, KIND_TOP1_TOPK = 0, 1, 2, 3
_NUM_GROUPS = (1, 2, 2, 3)


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


def _kernel_partition(spec: PartitionSpec) -> Optional[Partition]:
    """The kernels' description of ``spec``; None where they have none."""
    if spec.rule == GroupRule.LABEL:
        return Partition(KIND_LABEL, 1, spec.group_weight, spec.leaf_weights,
                         spec.temperature)
    if spec.adaptive is not None:
        return None
    if not spec.cuts:
        return Partition(KIND_ONE_GROUP, 1, spec.group_weight,
                         spec.leaf_weights, spec.temperature)
    if len(spec.cuts) == 1:
        return Partition(KIND_TOPK, spec.cuts[0], spec.group_weight,
                         spec.leaf_weights, spec.temperature)
    if len(spec.cuts) == 2 and spec.cuts[0] == 1:
        return Partition(KIND_TOP1_TOPK, spec.cuts[1], spec.group_weight,
                         spec.leaf_weights, spec.temperature)
    return None


def fused_supports(spec: PartitionSpec) -> bool:
    """Whether the fused path computes ``spec`` (else: the plain path)."""
    return _kernel_partition(spec) is not None


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


from . import fused_torch  # noqa: E402  (reads Partition and the kinds)


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
        loss = fused_torch.forward(s3, t3, labels2, grad3, part, scale,
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
                         spec: PartitionSpec,
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
        spec (PartitionSpec): groups and weights (see
            :func:`fused_supports`).
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
    part = _kernel_partition(spec)
    if part is None:
        raise NotImplementedError(
            f'the fused path does not compute {spec}: use the plain path '
            '(use_fused=False)')
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
