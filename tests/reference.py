"""Independent float64 reference for the loss family: plain per-row
probability math in numpy (softmax, sums, divisions, logs of ratios), no
log-space tricks and nothing from the package.

Every member is a partition of the classes into groups (``docs/method.md``):
by cut points of the teacher's ranking (KD: no cut, GDKD: ``(k,)``, GDKD3:
``(1, k)``, deeper hierarchies: ``(1, 3, 6)``) or by the label (DKD).
"""
import math

import numpy as np


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
