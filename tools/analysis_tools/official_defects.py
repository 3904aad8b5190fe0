"""Show each defect of the official GDKD code next to the exact value.

The official implementations (ZaberKo/GDKD for classification, a fork of
mdistiller; ZaberKo/seg-gdkd for Cityscapes) compute the loss with boolean
masks, full softmaxes and ``log_softmax(logits / T - 1000 * mask)`` for the
within-group distributions. :func:`official_gdkd` re-implements that
formula in a few lines (also the design ``benchmark_loss.py`` times as
``reference``); each demonstration below feeds it a small input and prints
its value next to the exact one from this package's plain path, which the
tests hold to an independent float64 computation. ``docs/method.md``
explains each defect.

    python tools/analysis_tools/official_defects.py
"""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from gdkd_seg.losses import partition  # noqa: E402
from gdkd_seg.losses.functional import group_index, plain_loss  # noqa

MASK_MAGNITUDE = 1000.0  # both official codes
CLAMP_EPS = 1.1920928955078125e-07  # float32 eps: seg-gdkd's clamp_probs


def official_masks(teacher, k):
    """The teacher's top-k as float 0/1 masks, by ``torch.topk(sorted=False)``
    as the official code picks them (its tie order is the kernel's)."""
    top = torch.topk(teacher, k, dim=1, sorted=False).indices
    mask_top = torch.zeros_like(teacher).scatter_(1, top, 1.0)
    return mask_top, 1.0 - mask_top


def official_gdkd(student, teacher, k=3, w0=1.0, w1=1.0, w2=2.0,
                  temperature=1.0, clamp=True):
    """GDKD as the official code computes it, averaged over all rows.

    ``clamp=True`` is the segmentation code (group masses clamped to
    ``[eps, 1 - eps]`` before their log), ``clamp=False`` the classification
    code (log of the raw masses). Maps ``(B, C, H, W)`` are permuted to rows
    first, as there. The official masks are boolean; float ones give the
    same values and are the faster form of the design on the CPU.
    """
    c = student.shape[1]
    if student.dim() > 2:
        student = student.permute(0, 2, 3, 1).reshape(-1, c)
        teacher = teacher.permute(0, 2, 3, 1).reshape(-1, c)
    teacher = teacher.detach()
    mask_top, mask_rest = official_masks(teacher, k)
    s, t = student / temperature, teacher / temperature
    p_s, p_t = F.softmax(s, dim=1), F.softmax(t, dim=1)

    def masses(p):
        both = torch.stack([(p * mask_top).sum(1), (p * mask_rest).sum(1)], 1)
        return both.clamp(CLAMP_EPS, 1 - CLAMP_EPS) if clamp else both

    def leaf_kl(mask_out):
        return F.kl_div(
            F.log_softmax(s - MASK_MAGNITUDE * mask_out, dim=1),
            F.log_softmax(t - MASK_MAGNITUDE * mask_out, dim=1),
            reduction='batchmean', log_target=True)

    binary = F.kl_div(masses(p_s).log(), masses(p_t), reduction='batchmean')
    return (w0 * binary + w1 * leaf_kl(mask_rest) +
            w2 * leaf_kl(mask_top)) * temperature**2


def official_kd(student, teacher, temperature=1.0):
    """Pixel-wise KD as seg-gdkd computes it by default (ignore_index=None):
    the mean over every pixel, void ones included."""
    c = student.shape[1]
    if student.dim() > 2:
        student = student.permute(0, 2, 3, 1).reshape(-1, c)
        teacher = teacher.permute(0, 2, 3, 1).reshape(-1, c)
    return F.kl_div(F.log_softmax(student / temperature, dim=1),
                    F.log_softmax(teacher.detach() / temperature, dim=1),
                    reduction='batchmean',
                    log_target=True) * temperature**2


def exact_gdkd(student, teacher, k, w0, w1, w2, temperature=1.0):
    spec = partition.gdkd(k=k, w0=w0, w1=w1, w2=w2, temperature=temperature)
    return plain_loss(student, teacher, spec, ignore_index=None)


def _value_and_grad(loss_fn, student, teacher):
    """The loss and the gradient of the rest classes (2 and up)."""
    x = student.clone().requires_grad_(True)
    loss = loss_fn(x, teacher)
    grad, = torch.autograd.grad(loss, x)
    return loss.item(), grad[0, 2:].tolist()


def defects():
    """Each demonstration: ``(title, what, official, this package's)``."""
    shown = []

    # 1. The -1000 mask: the top classes, 1000 lower, still outweigh the
    #    rest group once logits / T spread by more than ~1000.
    t = torch.tensor([[1500.0, 1499.0, 0.0, 1.0, 2.0]])
    s = torch.tensor([[1500.0, 1498.0, 2.0, 0.0, 1.0]])
    shown.append((
        '1. mask constant: the rest group\'s KL once logits/T spread by '
        '1500', 'KL(q^rest || p^rest), k=2',
        official_gdkd(s, t, k=2, w0=0.0, w1=0.0, w2=1.0).item(),
        exact_gdkd(s, t, k=2, w0=0.0, w1=0.0, w2=1.0).item()))

    # 2. Unguarded log of a group mass (classification): the student's
    #    rest mass underflows to 0 in float32 (a top logit 130 above it).
    t = torch.tensor([[5.0, 4.0, 0.0, 1.0, 2.0]])
    s = torch.tensor([[130.0, 4.0, 0.0, 1.0, 2.0]])
    args = dict(k=2, w0=1.0, w1=1.0, w2=8.0)
    shown.append((
        '2. unguarded log (classification code): a group mass underflows',
        'GDKD loss, gradient on the rest classes',
        _value_and_grad(
            lambda x, y: official_gdkd(x, y, clamp=False, **args), s, t),
        _value_and_grad(lambda x, y: exact_gdkd(x, y, **args), s, t)))

    # 3. Clamped masses (segmentation): the student's rest mass is 5e-11,
    #    clamped to 1.2e-7: the binary KL comes out low and its gradient
    #    on the rest classes is 0.
    t = torch.tensor([[0.0, 0.0, -7.0, -7.0]])
    s = torch.tensor([[0.0, 0.0, -23.7, -23.7]])
    args = dict(k=2, w0=1.0, w1=0.0, w2=0.0)
    shown.append((
        '3. clamped masses (segmentation code): a mass below 1.2e-7',
        'binary KL(Q || P), gradient on the rest classes',
        _value_and_grad(lambda x, y: official_gdkd(x, y, **args), s, t),
        _value_and_grad(lambda x, y: exact_gdkd(x, y, **args), s, t)))

    # 4. Ties at the k-th logit: topk(sorted=False) picks by its kernel's
    #    order, not a stated rule.
    t = torch.tensor([[3.0, 1.0, 3.0, 3.0, 0.0]])
    official_top = torch.nonzero(official_masks(t, 2)[0][0]).flatten()
    spec = partition.gdkd(k=2, w0=1.0, w1=1.0, w2=1.0, temperature=1.0)
    exact_top = torch.nonzero(group_index(spec, t)[0] == 0).flatten()
    shown.append(('4. ties at the k-th teacher logit (k=2, classes 0, 2, 3 '
                  'tied)', 'top group', official_top.tolist(),
                  exact_top.tolist()))

    # 5. seg-gdkd with 1..1000 ignored pixels logs
    #    `entropy=entropy.detach() ** logits_info` (a comma is missing):
    #    a tensor raised to a dict.
    try:
        torch.tensor(1.0)**dict(soft_y_s_max=torch.tensor(2.0))
        error = 'no error'
    except TypeError as e:
        error = f'TypeError: {e}'
    shown.append(('5. seg-gdkd masked path, 1..1000 ignored pixels',
                  'the logging line', error, 'one masked path, no error'))

    # 6. seg-gdkd's DKD ignores label -1 only: mmseg's void label 255 is a
    #    "class" index out of range.
    target = torch.tensor([3, 255])
    try:
        torch.zeros(2, 19).scatter_(1, target.unsqueeze(1), 1)
        error = 'no error'
    except RuntimeError as e:
        error = f'RuntimeError: {e}'
    shown.append(('6. seg-gdkd DKD with label 255 (void)', 'the target mask',
                  error, 'ignore_index=255 skips the pixel'))
    return shown


def main():
    for title, what, official, exact in defects():
        print(f'{title}\n    {what}\n    official:     {official}\n'
              f'    this package: {exact}')


if __name__ == '__main__':
    main()
