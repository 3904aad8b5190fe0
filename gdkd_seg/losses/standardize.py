"""Logit standardisation: z-scored logits before the temperature.

Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024
(LSKD), as the official classification code computes it (ZaberKo/GDKD,
``mdistiller/distillers/LSKD.py`` and, per group,
``mdistiller/distillers/experimental/LS_GDKD.py``). The equations and
the modes are in ``docs/method.md``:

* ``'global'``: every row (a sample, or a pixel of a map) of the student's
  and of the teacher's logits becomes ``(x - mean) / (eps + std)`` over its
  C classes, with the unbiased std (``torch.std``'s default) and
  ``eps = 1e-7``; the temperature then still divides.
* ``'both'`` / ``'other'`` (GDKD, GDKD3): the group KL sees the raw
  logits; within-group KLs see logits z-scored over their own group (mean
  and the *biased* std over the group's classes, as the official masked
  normalisation), every group for ``'both'``, only the last (the rest) for
  ``'other'``.

A row of equal logits (zero variance) becomes zeros, and its gradient is
the derivative of the formula there, ``(I - 1/n) / eps`` times the
incoming one (the std term contributes nothing to first order at zero
variance): finite, where ``torch.std``'s backward gives 0/0 = NaN.
"""
from typing import Optional

import torch
from torch import Tensor

__all__ = [
    'EPS', 'MODES', 'GROUP_MODES', 'check_mode', 'standardize',
    'standardize_groups'
]

EPS = 1e-7
# None (off), the official LSKD's, and LS-GDKD's per-group modes.
MODES = (None, 'global', 'both', 'other')
GROUP_MODES = ('both', 'other')


def check_mode(mode: Optional[str], allowed=MODES[:2]) -> Optional[str]:
    """Return ``mode`` if it is one of ``allowed``, else raise ValueError.

    Args:
        mode (str, optional): the ``standardize`` option.
        allowed (Sequence): the modes the loss takes. Default
            ``(None, 'global')`` (the per-group modes need the groups of a
            GDKD partition).
    """
    if mode not in allowed:
        extra = '' if set(GROUP_MODES) <= set(allowed) else (
            " ('both' and 'other' standardise within the groups of the "
            "teacher's top-k cut: GDKDLoss and GDKD3Loss only)")
        raise ValueError(f'standardize must be one of {tuple(allowed)}, got '
                         f'{mode!r}{extra}')
    return mode


def _zscore(logits: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """``(x - mean) / (eps + sqrt(var))`` with a finite gradient at
    ``var = 0`` (sqrt's derivative is infinite there; the std enters the
    formula only to second order, so its term is 0)."""
    positive = var > 0
    std = torch.where(positive, torch.where(positive, var, 1.).sqrt(), 0.)
    return (logits - mean) / (EPS + std)


def standardize(logits: Tensor) -> Tensor:
    """Z-score each row over the classes (dim 1): the ``'global'`` mode.

    Args:
        logits (Tensor): ``(N, C)`` or ``(B, C, *spatial)`` logits, C >= 2.

    Returns:
        Tensor: the same shape, in float32 (float64 for float64 input).
        A row with a non-finite logit passes unchanged (so its loss stays
        NaN, and an ignored one keeps a zero gradient).
    """
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise ValueError("standardize='global' needs at least 2 classes (the "
                         f'unbiased std of one is 0/0), got {num_classes}')
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    logits = logits.to(dtype)
    finite = torch.isfinite(logits).all(dim=1, keepdim=True)
    safe = torch.where(finite, logits, 0.)
    mean = safe.mean(dim=1, keepdim=True)
    var = (safe - mean).square().sum(dim=1, keepdim=True) / (num_classes - 1)
    return torch.where(finite, _zscore(safe, mean, var), logits)


def standardize_groups(logits: Tensor, group: Tensor, num_groups: int,
                       mode: str) -> Tensor:
    """Z-score each class within its group: the per-group modes.

    Args:
        logits (Tensor): ``(N, C)`` or ``(B, C, P)`` float logits.
        group (Tensor): int64 group of each class, shaped like ``logits``
            (``functional.group_index``), the last group the rest.
        num_groups (int): G.
        mode (str): ``'both'`` (every group) or ``'other'`` (the last).

    Returns:
        Tensor: the shape of ``logits``: each standardised class's
        ``(x - mean_g) / (eps + std_g)`` (mean and biased std over its group
        ``g``), the others' logits unchanged. A non-finite logit makes its
        row's values non-finite.
    """
    chosen = range(num_groups) if mode == 'both' else [num_groups - 1]
    out = logits
    for g in chosen:
        mask = (group == g).to(logits.dtype)
        size = mask.sum(dim=1, keepdim=True).clamp(min=1.)  # empty: unused
        mean = (logits * mask).sum(dim=1, keepdim=True) / size
        var = ((logits - mean) * mask).square().sum(dim=1, keepdim=True) / size
        out = torch.where(mask > 0, _zscore(logits, mean, var), out)
    return out
