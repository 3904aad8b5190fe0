"""Independent float64 reference for the loss family: plain per-row
probability math in numpy (softmax, sums, divisions, logs of ratios), no
log-space tricks and nothing from the package.

Every member is a partition of the classes into groups (``docs/method.md``):
by cut points of the teacher's ranking (KD: no cut, GDKD: ``(k,)``, GDKD3:
``(1, k)``, deeper hierarchies: ``(1, 3, 6)``) or by the label (DKD).

DIST and the options (``kl_type``, the intra-class term, the entropy) are
written in plain float64 torch at the end, one row or one class at a time,
so that autograd gives their gradients.
"""
import math

import numpy as np
import torch


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def kl(q, p):
    q, p = np.asarray(q), np.asarray(p)
    nz = q > 0
    return float(np.sum(q[nz] * np.log(q[nz] / p[nz])))


def teacher_order(t):
    """Classes by descending teacher logit, ties to the lowest index."""
    return sorted(range(len(t)), key=lambda i: (-t[i], i))


def cut_groups(t, cuts):
    """Group of each class: the number of cut points at or below its rank
    in the teacher's order."""
    groups = np.empty(len(t), dtype=int)
    for rank, i in enumerate(teacher_order(t)):
        groups[i] = sum(c <= rank for c in cuts)
    return groups


def label_groups(num_classes, label):
    """DKD: the ground-truth class is group 0, the rest group 1."""
    groups = np.ones(num_classes, dtype=int)
    groups[label] = 0
    return groups


def _masses(s, t, groups, num_groups, T):
    p, q = softmax(s / T), softmax(t / T)
    P = np.array([p[groups == g].sum() for g in range(num_groups)])
    Q = np.array([q[groups == g].sum() for g in range(num_groups)])
    return p, q, P, Q


def partition_row_loss(s, t, groups, w_group, leaf_weights, T):
    """T^2 [w_group KL(Q||P) + sum_g w_g KL(q^g||p^g)] for one row."""
    p, q, P, Q = _masses(s, t, groups, len(leaf_weights), T)
    loss = w_group * kl(Q, P)
    for g, w in enumerate(leaf_weights):
        m = groups == g
        if m.any() and Q[g] > 0:
            loss += w * kl(q[m] / Q[g], p[m] / P[g])
    return T * T * loss


def partition_row_grad(s, t, groups, w_group, leaf_weights, T):
    """Closed-form gradient of partition_row_loss w.r.t. s::

        dL/ds_i = T [w_group p^g_i (P_g - Q_g) + w_g (p^g_i - q^g_i)]

    with g the group of class i (``docs/method.md`` derives it)."""
    p, q, P, Q = _masses(s, t, groups, len(leaf_weights), T)
    grad = np.zeros_like(s)
    for g, w in enumerate(leaf_weights):
        m = groups == g
        if m.any():
            grad[m] = T * (w_group * p[m] / P[g] * (P[g] - Q[g]) +
                           w * (p[m] / P[g] - q[m] / Q[g]))
    return grad


def cut_row_loss(s, t, cuts, w_group, leaf_weights, T):
    return partition_row_loss(s, t, cut_groups(t, cuts), w_group,
                              leaf_weights, T)


def cut_row_grad(s, t, cuts, w_group, leaf_weights, T):
    return partition_row_grad(s, t, cut_groups(t, cuts), w_group,
                              leaf_weights, T)


def kd_row(s, t, T):
    return T * T * kl(softmax(t / T), softmax(s / T))


def dkd_row(s, t, target, alpha, beta, T):
    return partition_row_loss(s, t, label_groups(len(t), target), alpha,
                              [0., beta], T)


def gdkd_row(s, t, k, w0, w1, w2, T):
    return cut_row_loss(s, t, (k, ), w0, [w1, w2], T)


def gdkd_row_grad(s, t, k, w0, w1, w2, T):
    return cut_row_grad(s, t, (k, ), w0, [w1, w2], T)


def gdkd3_row(s, t, k, w0, w1, w2, T):
    """Top-1 / top-2..k / rest; the top-1 leaf is one class (KL 0)."""
    return cut_row_loss(s, t, (1, k), w0, [0., w1, w2], T)


def adaptive_k_row(t, tau, T, max_k=None):
    """Smallest k whose top-k teacher mass reaches tau (exact sums)."""
    q = sorted((math.exp(x) for x in (t - t.max()) / T), reverse=True)
    total = math.fsum(q)
    k = next(k for k in range(1, len(q) + 1)
             if math.fsum(q[:k]) >= tau * total)
    return min(k, max_k or len(q))


# DIST and the options, in float64 torch.


def pearson(x, y):
    """Pearson's correlation of two 1-d tensors; 0 (with a zero gradient)
    when either is constant."""
    if bool((x == x[0]).all()) or bool((y == y[0]).all()):
        return (x * 0).sum()
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / torch.sqrt((xc * xc).sum() * (yc * yc).sum())


def pixel_rows(x):
    """``(B, C, H, W)`` -> ``(B, H * W, C)``."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


def dist(s, t, valid, T, beta, gamma, per_image, reduction='mean'):
    """DIST of ``(B, C, H, W)`` logits over the ``(B, H * W)`` bool
    ``valid`` pixels: ``beta * inter + gamma * intra`` (no T^2); each term
    averaged (or summed) over its pixels, its classes (and images)."""
    p = torch.softmax(pixel_rows(s) / T, dim=2)
    q = torch.softmax(pixel_rows(t) / T, dim=2)
    inter = [1 - pearson(p[b, n], q[b, n])
             for b, n in valid.nonzero().tolist()]
    images = [[b] for b in range(len(p))] if per_image else [range(len(p))]
    intra = []
    for group in images:
        ps = torch.cat([p[b][valid[b]] for b in group])
        qs = torch.cat([q[b][valid[b]] for b in group])
        if len(ps):
            intra += [1 - pearson(ps[:, c], qs[:, c])
                      for c in range(p.shape[2])]

    def reduce(values):
        values = torch.stack(values)
        return values.mean() if reduction == 'mean' else values.sum()

    total = beta * reduce(inter) if inter else s.sum() * 0
    if gamma:
        total = total + gamma * reduce(intra)
    return total


def kl_row(s, t, groups, w_group, leaf_weights, T, kl_type='forward'):
    """``T^2 [w_group KL(Q||P) + sum_g w_g D(q^g, p^g)]`` of one row (1-d
    float64 tensors, numpy ``groups``) with ``D`` the forward KL
    ``KL(q^g||p^g)``, the reverse ``KL(p^g||q^g)`` or their mean."""
    def kl_t(a, b):
        return (a * (a / b).log()).sum()

    p, q = torch.softmax(s / T, 0), torch.softmax(t / T, 0)
    groups = torch.as_tensor(groups)
    loss = s.sum() * 0
    masses = [(p[groups == g].sum(), q[groups == g].sum())
              for g in range(len(leaf_weights))]
    present = [(groups == g).any() for g in range(len(leaf_weights))]
    if len(leaf_weights) > 1:
        loss = loss + w_group * kl_t(
            torch.stack([m[1] for m, ok in zip(masses, present) if ok]),
            torch.stack([m[0] for m, ok in zip(masses, present) if ok]))
    for g, w in enumerate(leaf_weights):
        if present[g]:
            pg = p[groups == g] / masses[g][0]
            qg = q[groups == g] / masses[g][1]
            forward, reverse = kl_t(qg, pg), kl_t(pg, qg)
            loss = loss + w * {'forward': forward, 'reverse': reverse,
                               'both': (forward + reverse) / 2}[kl_type]
    return T * T * loss


def entropy_row(s, T):
    p = torch.softmax(s / T, 0)
    return -(p * p.log()).sum()
