"""Fused partitioned-KL loss: mean loss and closed-form gradient in one pass.

Same function as ``functional.plain_loss`` with ``'mean'`` (over valid rows)
or ``'sum'`` reduction, for any :class:`~.partition.PartitionSpec`, as one
autograd function:

* forward computes the loss *and* ``dLoss/ds`` (docs/method.md),

      dL/ds_i = T [w_group p^g_i (P_g - Q_g) + w_g (p^g_i - q^g_i)] / n,

  and keeps only that gradient (one logits-sized tensor); with
  ``spec.kl_type`` ``'reverse'`` or ``'both'`` the within-group part is the
  reverse KL's (docs/method.md), on the torch path only;
* backward multiplies it by the incoming gradient, in place, and returns it;
  an incoming gradient of exactly 1 (``loss.backward()`` on a loss whose
  weight was passed as ``scale``) costs no pass over it. A second backward
  through a retained graph recomputes the gradient from the saved inputs.

Inputs are ``(N, C)`` rows or ``(B, C, *spatial)`` maps, read in place as
``(B, C, P)`` views (no permuted copy). Two implementations:

* ``'triton'`` (CUDA tensors, when triton imports): one kernel launch per
  forward (two with labels: one reads them) and one, which reads nothing
  when the incoming gradient is 1, per backward (``fused_triton``). Which
  kernel runs is decided per kernel signature on its first call
  (:func:`_triton_path`): the preferred kernel within its limits that
  compiles and agrees with the plain path on a slice of that call, else the
  next one, else the torch path.
* ``'torch'`` (any device): chunks of pixels, each a few ``(C, L)``
  temporaries; nothing logits-sized besides the gradient (``fused_torch``).

Both follow the plain implementation's numerics: float32 accumulation (float64
inputs stay float64 in the torch path), each group's log-softmax relative to
the group's own max, no masking constant, no clamping, ties in the teacher's
ranking to the lowest class index. The gradient has the student's dtype.

Rows: a row whose label equals ``ignore_index`` contributes 0 to the loss and
its gradient is 0, whatever its logits; a valid row with a non-finite logit
makes the loss NaN (its gradient may be NaN). An empty input gives 0 with a
zero gradient.

Labels that are neither ``ignore_index`` nor a class raise ValueError. Labels
on the host are checked before computing. CUDA labels on the Triton path are
checked by the kernels without a host sync: the counts come back with an
asynchronous copy and are read when ready, at the next call or at the end of
backward, so the error can come one step late. ``GDKD_SEG_LABEL_CHECK=sync``
checks every call synchronously before computing; :func:`check_labels_now`
waits for the pending checks.
"""
import os
import warnings
from collections import deque
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import functional as F
from . import fused_torch
from .partition import PartitionSpec

try:
    from . import fused_triton
except ImportError:  # triton is optional: the torch path covers every case
    fused_triton = None

__all__ = [
    'fused_partitioned_kl', 'triton_available',
    'check_labels_now', 'LABEL_CHECK_ENV'
]

# 'auto' (default): labels on the host are checked before computing, CUDA
# labels on the Triton path by the kernel; 'sync': every call before
# computing (a host sync on CUDA); 'device': by the kernel wherever the
# Triton path runs (CPU tensors under TRITON_INTERPRET=1 too).
LABEL_CHECK_ENV = 'GDKD_SEG_LABEL_CHECK'


def triton_available() -> bool:
    """Whether the Triton kernels can be used (triton imported)."""
    return fused_triton is not None


class _PendingLabelChecks:
    """Bad-label counts of earlier Triton calls, on their way to the host."""

    def __init__(self):
        self._queue = deque()

    def add(self, stats: Tensor, num_classes: int,
            ignore_index: Optional[int]) -> None:
        """Queue ``stats`` (count, min, max of bad labels; int64 x 3)."""
        ready = None
        if stats.is_cuda:
            host = torch.empty(stats.shape, dtype=stats.dtype,
                               pin_memory=True)
            host.copy_(stats, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record()
            stats = host
        self._queue.append((stats, ready, num_classes, ignore_index))

    def raise_ready(self, wait: bool = False) -> None:
        """Raise ValueError for the first queued call with bad labels;
        without ``wait``, only calls whose counts have arrived are read."""
        while self._queue:
            stats, ready, num_classes, ignore_index = self._queue[0]
            if ready is not None:
                if wait:
                    ready.synchronize()
                elif not ready.query():
                    return
            self._queue.popleft()
            count, low, high = stats.tolist()
            if count:
                values = str(low) if low == high else f'{low} to {high}'
                raise ValueError(
                    f'labels must be in [0, {num_classes}) (the number of '
                    f'classes) or equal ignore_index={ignore_index}; a call '
                    f'of the fused loss had {count} pixels with other '
                    f'values: {values} (checked on the device after the '
                    f'call; {LABEL_CHECK_ENV}=sync raises in the call '
                    'itself)')


_PENDING = _PendingLabelChecks()


def check_labels_now() -> None:
    """Wait for the label checks of earlier calls and raise ValueError if
    one had labels that are neither ``ignore_index`` nor a class."""
    _PENDING.raise_ready(wait=True)


def _label_check_mode() -> str:
    mode = os.environ.get(LABEL_CHECK_ENV, 'auto')
    if mode not in ('auto', 'sync', 'device'):
        raise ValueError(f"{LABEL_CHECK_ENV} must be 'auto', 'sync' or "
                         f"'device', got {mode!r}")
    return mode


# Per kernel signature, the path that computes it: 'class_loop', 'tile' or
# 'torch', decided on the signature's first call by _choose_path.
_PATHS = {}
# Rows of a call the first-use verification compares (bounded: the cost is
# one small kernel launch and a plain-path step on these rows, once).
_VERIFY_ROWS = 256


def _verification_rows(s3: Tensor, t3: Tensor, labels2, row_k,
                       ignore_index: Optional[int]):
    """Up to ``_VERIFY_ROWS`` valid rows of this call with finite logits
    and a class label (if any), in its layout (maps: unit pixel stride;
    rows: classes contiguous), as ``(1, C, n)`` logits and ``(1, n)``
    labels and cuts; None if there is none."""
    B, C, P = s3.shape
    usable = torch.isfinite(s3).all(1) & torch.isfinite(t3).all(1)
    if labels2 is not None:  # not a label that the device check reports
        usable &= (labels2 >= 0) & (labels2 < C)
        if ignore_index is not None:
            usable &= labels2 != ignore_index
    index = usable.reshape(-1).nonzero()[:_VERIFY_ROWS, 0]
    if not index.numel():
        return None
    if index.numel() >= 16:
        # A multiple of 16 rows: Triton then specialises the kernel for
        # them as for a full map, and the check compiles nothing more.
        index = index[:index.numel() // 16 * 16]
    b, p = index // P, index % P
    maps = s3.stride(2) == 1 and P > 1

    def logits(x3):
        rows = x3[b, :, p]  # (n, C)
        return (rows.t().contiguous() if maps else rows.t()).unsqueeze(0)

    def per_row(x2):
        return None if x2 is None else x2[b, p].unsqueeze(0).contiguous()

    return logits(s3), logits(t3), per_row(labels2), per_row(row_k)


def _plain_reference(rows: tuple, spec: PartitionSpec,
                     ignore_index: Optional[int]):
    """The plain path's loss and gradient on ``rows``, in float64 on the
    same (rounded) inputs."""
    s, t, labels, _ = rows
    with torch.enable_grad():  # autograd.Function.forward disables it
        student = s[0].t().double().requires_grad_(True)
        loss = F.plain_loss(student, t[0].t().double(), spec,
                            None if labels is None else labels[0],
                            ignore_index)
        grad, = torch.autograd.grad(loss, student)
    return loss.item(), grad


def _disagreement(rows: tuple, loss: float, grad: Tensor, reference: tuple,
                  spec: PartitionSpec) -> Optional[str]:
    """How a kernel's ``loss`` and ``(1, C, n)`` ``grad`` on ``rows``
    differ from the plain path's ``reference`` (None: within float32
    rounding)."""
    s, t, _, _ = rows
    ref, ref_grad = reference
    # float32 rounds each log-probability to ~eps * (1 + |x| / T); a row's
    # loss sums C such terms times the weights (and T^2), its gradient
    # entries T w (p - q) / n likewise; 8x that bound still flags any wrong
    # group, term or weight (errors of order the loss itself). The gradient
    # is also rounded once to the student's dtype.
    num_rows, num_classes = ref_grad.shape
    temperature = spec.temperature
    spread = 1. + max(s.abs().max().item(), t.abs().max().item()) / \
        temperature
    weight = spec.group_weight + max(spec.leaf_weights)
    bound = 8 * num_classes * torch.finfo(torch.float32).eps * spread * \
        weight
    loss_tol = bound * temperature**2
    largest = ref_grad.abs().max().item()
    grad_tol = bound * temperature / num_rows + \
        2 * torch.finfo(s.dtype).eps * largest
    grad_err = (grad[0].t().double() - ref_grad).abs().max().item()
    if abs(loss - ref) <= loss_tol and grad_err <= grad_tol:
        return None
    return (f'disagrees with the plain path on {num_rows} rows of its first '
            f'call: loss {loss:.7g} vs {ref:.7g} (tolerance {loss_tol:.2g}),'
            f' largest gradient difference {grad_err:.3g} (largest gradient '
            f'{largest:.3g}, tolerance {grad_tol:.2g})')


def _choose_path(candidates: tuple, forced: bool, sizes: tuple, s3, t3,
                 labels2, row_k, spec: PartitionSpec,
                 ignore_index: Optional[int]) -> Optional[str]:
    """The first of ``candidates`` that compiles and agrees with the plain
    path on rows of this call, else ``'torch'``; warns for each kernel
    passed over (a kernel named in ``config`` raises instead). None when
    the call has no valid row with finite logits to compare."""
    rows = _verification_rows(s3, t3, labels2, row_k, ignore_index)
    if rows is None:
        return None
    reference = _plain_reference(rows, spec, ignore_index)
    what = (f'(C={s3.shape[1]}, {spec}, {s3.dtype}, '
            f'{"with" if labels2 is not None else "without"} labels)')
    for i, kernel in enumerate(candidates):
        grad = torch.empty_like(rows[0])
        try:
            loss, _ = fused_triton.launch(*rows[:2], rows[2], rows[3], grad,
                                          spec, 1.0, ignore_index, True,
                                          kernel, sizes if i == 0 else ())
        except Exception as err:  # noqa: BLE001 - whatever the compiler raised
            if forced:
                raise
            # An older Triton (3.1 and 3.2 reject tuples of tensors) or
            # another compiler failure: nothing ran.
            problem = (f'failed with triton {fused_triton.triton.__version__}'
                       f' ({type(err).__name__}: {err})')
        else:
            problem = _disagreement(rows, loss.item(), grad, reference, spec)
        if problem is None:
            return kernel
        if forced:
            raise RuntimeError(f'the {kernel} Triton kernel {problem} '
                               f'{what}')
        instead = f'the {candidates[i + 1]} kernel' \
            if i + 1 < len(candidates) else 'the torch path'
        warnings.warn(f'the {kernel} Triton kernel {problem} {what}; using '
                      f'{instead} for it from now on')
    return 'torch'


def _triton_path(s3: Tensor, t3: Tensor, labels2, row_k, grad3,
                 spec: PartitionSpec, ignore_index: Optional[int],
                 config) -> Tuple[str, tuple]:
    """The kernel (and block sizes) for this call, or ``'torch'``.

    ``config``: ``(kernel, )``, ``(kernel, BLOCK_P, num_warps)`` or
    ``(BLOCK_P, num_warps)``; a named kernel is used (or raises), never
    replaced.
    """
    config = tuple(config or ())
    forced = bool(config) and isinstance(config[0], str)
    sizes = config[1:] if forced else config
    num_classes = s3.shape[1]
    if forced:
        if config[0] not in fused_triton.KERNELS:
            raise ValueError(f'kernel must be one of {fused_triton.KERNELS},'
                             f' got {config[0]!r}')
        problem = fused_triton.limit_error(config[0], spec, num_classes)
        if problem:
            raise ValueError(problem)
        candidates = (config[0], )
    else:
        candidates = fused_triton.pick_kernels(s3, t3, grad3, spec)
    if not candidates:
        return 'torch', ()
    signature = (candidates, sizes, num_classes,
                 *fused_triton.constexprs(spec, num_classes).items(),
                 s3.dtype, t3.dtype, labels2 is not None,
                 ignore_index is not None, s3.device.type)
    path = _PATHS.get(signature)
    if path is None:
        path = _choose_path(candidates, forced, sizes, s3, t3, labels2,
                            row_k, spec, ignore_index)
        if path is None:  # nothing to compare: decide on a later call
            return (candidates[0], sizes) if forced else ('torch', ())
        _PATHS[signature] = path
    return path, sizes if path == candidates[0] else ()


def _compute(student: Tensor, teacher: Tensor, labels: Optional[Tensor],
             spec: PartitionSpec, scale: float, ignore_index: Optional[int],
             mean: bool, backend: str, need_grad: bool, config=None):
    """Loss, gradient (or None) and, from the kernels, the bad-label
    counts (or None)."""
    s3, t3 = F.as_bcp(student), F.as_bcp(teacher)
    B, C, P = s3.shape
    grad = grad3 = None
    if need_grad:
        grad = torch.empty(student.shape, dtype=student.dtype,
                           device=student.device)
        grad3 = F.as_bcp(grad)
    if s3.numel() == 0:  # nothing to launch: 0, as an all-ignored batch
        return torch.zeros((), dtype=F.compute_dtype(student),
                           device=student.device), grad, None
    labels2 = None if labels is None else labels.reshape(B, P)
    row_k = None  # the torch path computes an adaptive cut chunk by chunk
    if backend == 'triton':
        if spec.adaptive is not None:
            row_k = F.adaptive_k(F.flatten_logits(teacher),
                                 spec.adaptive.mass, spec.temperature,
                                 spec.adaptive.max_k).reshape(B, P).to(
                                     torch.int32)
        path, sizes = _triton_path(s3, t3, labels2, row_k, grad3, spec,
                                   ignore_index, config)
        if path != 'torch':
            loss, bad_labels = fused_triton.launch(
                s3, t3, labels2, row_k, grad3, spec, scale, ignore_index,
                mean, path, sizes)
            return loss, grad, bad_labels
    loss = fused_torch.forward(s3, t3, labels2, row_k, grad3, spec, scale,
                               ignore_index, mean)
    return loss, grad, None


class FusedPartitionedKL(torch.autograd.Function):
    """Autograd function; call through :func:`fused_partitioned_kl`."""

    @staticmethod
    def forward(ctx, student, teacher, labels, spec, scale, ignore_index,
                mean, backend, config, defer_label_check):
        loss, grad, bad_labels = _compute(
            student, teacher, labels, spec, scale, ignore_index, mean,
            backend, ctx.needs_input_grad[0], config)
        if defer_label_check:
            if bad_labels is not None:
                _PENDING.add(bad_labels, student.shape[1], ignore_index)
            else:  # the torch path ran instead of a kernel
                F.check_labels(labels, student.shape[1], ignore_index)
        ctx.grad = grad
        ctx.args = (spec, scale, ignore_index, mean, backend, config)
        ctx.save_for_backward(student, teacher, labels)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        grad, ctx.grad = ctx.grad, None
        spec, scale, ignore_index, mean, backend, config = ctx.args
        if grad is None:  # a second backward through a retained graph
            student, teacher, labels = ctx.saved_tensors
            _, grad, _ = _compute(student, teacher, labels, spec, scale,
                                  ignore_index, mean, backend, True, config)
        if backend == 'triton' and grad.numel():
            fused_triton.scale_(grad, grad_output.float())
        elif grad_output.item() != 1:
            grad.mul_(grad_output.to(grad.dtype))
        _PENDING.raise_ready()
        return grad, None, None, None, None, None, None, None, None, None


def fused_partitioned_kl(student: Tensor,
                         teacher: Tensor,
                         spec: PartitionSpec,
                         labels: Optional[Tensor] = None,
                         ignore_index: Optional[int] = 255,
                         scale: float = 1.0,
                         reduction: str = 'mean',
                         backend: Optional[str] = None,
                         config=None) -> Tensor:
    """``scale * reduce(partitioned KL rows)`` with a fused gradient.

    Args:
        student (Tensor): ``(N, C)`` or ``(B, C, *spatial)`` logits; float16,
            bfloat16, float32 (float64 on the torch path).
        teacher (Tensor): same shape (any float dtype); not differentiated.
        spec (PartitionSpec): groups and weights.
        labels (Tensor, optional): ``(N,)`` or ``(B, *spatial)`` integer
            labels: rows equal to ``ignore_index`` are skipped; for a label
            partition they also define the groups (required then).
        ignore_index (int, optional): label of skipped rows; None skips
            none (labels then only serve a label partition; given, they are
            checked all the same).
        scale (float): multiplier (a loss weight); folding it in here keeps
            the incoming gradient at 1 so backward needs no pass.
        reduction (str): ``'mean'`` over valid rows or ``'sum'``.
        backend (str, optional): ``'triton'`` or ``'torch'``; default: triton
            for CUDA tensors when available (not float64), else torch.
        config (tuple, optional): Triton kernel and block override
            (:func:`_triton_path`), e.g. ``('tile', )`` or
            ``('class_loop', 128, 4)``.

    Returns:
        Tensor: 0-dim float32 loss (float64 for float64 torch-path inputs).
    """
    _PENDING.raise_ready()
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
    spec.check_num_classes(num_classes)
    if spec.needs_labels and labels is None:
        raise ValueError('a label partition (DKD) needs labels')
    if labels is not None:
        labels = labels.reshape(-1)
        rows = student.numel() // max(num_classes, 1)
        if labels.numel() != rows:
            raise ValueError(f'{labels.numel()} labels for {rows} rows')
    if backend is None:
        backend = 'triton' if student.is_cuda and triton_available() and \
            student.dtype != torch.float64 else 'torch'
    if backend == 'triton':
        if not triton_available():
            raise RuntimeError('backend="triton" needs the triton package')
        if student.dtype == torch.float64:
            raise ValueError('the Triton path computes in float32: use '
                             'backend="torch" for float64 logits')
        if student.numel() >= 2**31:
            raise ValueError('the Triton path indexes with int32: use '
                             'backend="torch" for >= 2**31 logits')
    elif backend != 'torch':
        raise ValueError(f"backend must be 'triton' or 'torch', got "
                         f'{backend!r}')
    defer_label_check = False
    if labels is not None:
        mode = _label_check_mode()
        defer_label_check = backend == 'triton' and (
            mode == 'device' or mode == 'auto' and labels.is_cuda)
        if not defer_label_check:
            F.check_labels(labels, num_classes, ignore_index)
    return FusedPartitionedKL.apply(student, teacher.detach(), labels, spec,
                                    float(scale), ignore_index,
                                    reduction == 'mean', backend, config,
                                    defer_label_check)
