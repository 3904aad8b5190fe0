"""DIST's correlation losses as pure functions (no OpenMMLab imports).

Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS
2022. With ``p = softmax(s / T)`` and ``q = softmax(t / T)`` per pixel (the
columns of a ``(B, C, P)`` map) and ``rho`` Pearson's correlation::

    inter = mean over valid pixels n of  1 - rho(p[:, n], q[:, n])
    intra = mean over classes c of       1 - rho(p[c, :], q[c, :])
    DIST  = beta * inter + gamma * intra

``inter`` correlates the class distributions at each pixel; ``intra``
correlates each class's probabilities across the valid pixels of the batch
(or of each image, ``per_image``, then averages over images and classes).
The relation-augmented KL losses (the official ``*-dist`` methods) add
``intra_weight * intra`` to a partitioned KL. ``docs/method.md`` says why
this is not a partitioned KL and how it differs from the official code.

Masking: an ignored pixel is dropped before the means, so it changes no
correlation (its probabilities enter neither the means, the covariances nor
the variances) and gets 0 gradient whatever its logits. A valid pixel with a
non-finite logit makes the loss NaN.

Zero variance: a vector whose entries are all equal (a uniform class
distribution, a class with the same probability at every pixel, a single
valid pixel) has no correlation; it is defined here as 0, the value the
official code's ``eps`` in the denominator gives, with a zero gradient.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .functional import finite_rows, prepare_rows, reduce_rows

__all__ = ['pearson', 'inter_relation', 'intra_relation', 'dist_loss',
           'intra_loss']


def pearson(x: Tensor, y: Tensor, dims: Sequence[int],
            weight: Optional[Tensor] = None) -> Tensor:
    """Pearson's correlation of ``x`` and ``y`` over ``dims``.

    Args:
        x, y (Tensor): the same shape.
        dims (Sequence[int]): the dims the correlation runs over.
        weight (Tensor, optional): 0/1 float mask broadcastable to ``x``:
            entries with 0 are dropped before the means.

    Returns:
        Tensor: ``x`` without ``dims``; 0 where ``x`` or ``y`` is constant
        over the kept entries (or none is kept), NaN where one is NaN.
    """
    dims = tuple(dims)

    def centred(v):
        if weight is None:
            return v - v.mean(dims, keepdim=True)
        count = weight.sum(dims, keepdim=True).clamp(min=1)
        return (v - (v * weight).sum(dims, keepdim=True) / count) * weight

    def constant(v):
        # All kept entries equal. Exact, unlike a variance of 0: a constant
        # vector's mean can round off its value by an ulp.
        if not v.numel():  # no entry to reduce
            return v.sum(dims) == 0
        if weight is None:
            return v.amax(dims) <= v.amin(dims)
        kept = weight > 0
        return torch.where(kept, v, float('-inf')).amax(dims) <= \
            torch.where(kept, v, float('inf')).amin(dims)

    xc, yc = centred(x), centred(y)
    tiny = torch.finfo(xc.dtype).tiny
    scale = xc.square().sum(dims).clamp(min=tiny).rsqrt() * \
        yc.square().sum(dims).clamp(min=tiny).rsqrt()
    with torch.no_grad():
        defined = ~(constant(x.detach()) | constant(y.detach()))
    return torch.where(defined, (xc * yc).sum(dims) * scale, 0.)


def _probabilities(student, teacher, labels, ignore_index, temperature):
    """``(p, q, valid)``: ``(B, C, P)`` softened student and teacher
    distributions (NaN in a row with a non-finite logit, zeros' softmax in
    an ignored one) and the ``(B, P)`` valid rows (None: all)."""
    s3, t3, _, valid = prepare_rows(student, teacher, labels, ignore_index)
    finite = finite_rows(s3, t3)
    p = torch.softmax(s3 / temperature, dim=1)
    q = torch.softmax(t3 / temperature, dim=1)
    if not bool(finite.all()):
        p = torch.where(finite[:, None], p, float('nan'))
        q = torch.where(finite[:, None], q, float('nan'))
    return p, q, valid


def inter_relation(p: Tensor, q: Tensor) -> Tensor:
    """``(B, P)``: ``1 - rho`` of each pixel's class distributions."""
    return 1. - pearson(p, q, (1, ))


def intra_relation(p: Tensor, q: Tensor, valid: Optional[Tensor],
                   per_image: bool) -> Tuple[Tensor, Tensor]:
    """``1 - rho`` of each class's probabilities across valid pixels.

    Args:
        p, q (Tensor): ``(B, C, P)`` probabilities.
        valid (Tensor, optional): ``(B, P)`` bool, the pixels that count
            (None: all).
        per_image (bool): one correlation per image and class instead of
            one per class across the batch.

    Returns:
        tuple: ``(values, counted)``: ``(B, C)`` (per image) or ``(1, C)``
        values and a bool mask of the same shape, False for an image
        without a valid pixel.
    """
    weight = None if valid is None else valid[:, None].to(p.dtype)
    dims = (2, ) if per_image else (0, 2)
    values = 1. - pearson(p, q, dims, weight)
    if not per_image:
        values = values[None]
    if valid is None:
        counted = torch.full_like(values, p.shape[0] * p.shape[2] > 0,
                                  dtype=torch.bool)
    else:
        has_pixels = valid.any(dim=1) if per_image else valid.any()[None]
        counted = has_pixels[:, None].expand(values.shape)
    return values, counted


def _intra_term(p, q, valid, per_image, reduction) -> Tensor:
    if reduction == 'none':
        raise ValueError(
            "reduction='none' gives one loss per pixel, and the "
            'intra-class correlation is one number per class over all '
            "pixels: use 'mean' or 'sum' (or gamma=0 / intra_weight=0)")
    values, counted = intra_relation(p, q, valid, per_image)
    return reduce_rows(values.reshape(-1), counted.reshape(-1), reduction)


def dist_loss(student: Tensor,
              teacher: Tensor,
              labels: Optional[Tensor] = None,
              ignore_index: Optional[int] = 255,
              temperature: float = 1.0,
              beta: float = 1.0,
              gamma: float = 1.0,
              per_image_intra: bool = False,
              reduction: str = 'mean') -> Tensor:
    """DIST, ``beta * inter + gamma * intra`` (no ``T**2``: the official
    segmentation code's scale).

    Args:
        student (Tensor): ``(N, C)`` or ``(B, C, *spatial)`` logits.
        teacher (Tensor): the same shape (not differentiated).
        labels (Tensor, optional): ``(rows,)`` labels in
            ``functional.flatten_logits`` order; rows equal to
            ``ignore_index`` are dropped.
        ignore_index (int, optional): label of dropped rows.
        temperature (float): T.
        beta, gamma (float): weights of ``inter`` and ``intra``.
        per_image_intra (bool): ``intra`` within each image.
        reduction (str): ``'mean'`` (each term averaged over its units:
            valid pixels, classes), ``'sum'`` (summed over them) or
            ``'none'`` (``(rows,)`` ``beta * (1 - rho)``, only with
            ``gamma=0``).

    Returns:
        Tensor: a scalar, or ``(rows,)``; float32 (float64 for float64
        inputs).
    """
    if gamma and reduction == 'none':
        raise ValueError("reduction='none' needs gamma=0: the intra-class "
                         'term is one number per class, not per pixel')
    p, q, valid = _probabilities(student, teacher, labels, ignore_index,
                                 temperature)
    loss = reduce_rows(beta * inter_relation(p, q).reshape(-1),
                       None if valid is None else valid.reshape(-1),
                       reduction)
    if not gamma:
        return loss
    return loss + gamma * _intra_term(p, q, valid, per_image_intra,
                                      reduction)


def intra_loss(student: Tensor,
               teacher: Tensor,
               labels: Optional[Tensor] = None,
               ignore_index: Optional[int] = 255,
               temperature: float = 1.0,
               per_image: bool = False,
               reduction: str = 'mean') -> Tensor:
    """DIST's ``intra`` alone (the term the ``*-dist`` losses add), with the
    arguments of :func:`dist_loss`."""
    p, q, valid = _probabilities(student, teacher, labels, ignore_index,
                                 temperature)
    return _intra_term(p, q, valid, per_image, reduction)
