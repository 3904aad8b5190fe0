"""Independent float64 reference for the loss family: plain per-row
probability math (softmax, sums, divisions), no log-space tricks."""
import math

import numpy as np


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def kl(q, p):
    q, p = np.asarray(q), np.asarray(p)
    nz = q > 0
    return float(np.sum(q[nz] * np.log(q[nz] / p[nz])))


def partition_row_loss(s, t, groups, w_bin, w_groups, T):
    """T^2 [w_bin KL(Q||P) + sum_g w_g KL(q^g||p^g)] for one row."""
    p, q = softmax(s / T), softmax(t / T)
    n_groups = len(w_groups)
    P = np.array([p[groups == g].sum() for g in range(n_groups)])
    Q = np.array([q[groups == g].sum() for g in range(n_groups)])
    loss = w_bin * kl(Q, P)
    for g in range(n_groups):
        m = groups == g
        if m.any() and Q[g] > 0:
            loss += w_groups[g] * kl(q[m] / Q[g], p[m] / P[g])
    return T * T * loss


def topk_groups(t, k):
    """0 for the k largest teacher logits (ties: lowest index), 1 otherwise."""
    order = sorted(range(len(t)), key=lambda i: (-t[i], i))
    g = np.ones(len(t), dtype=int)
    g[order[:k]] = 0
    return g


def gdkd_row(s, t, k, w0, w1, w2, T):
    return partition_row_loss(s, t, topk_groups(t, k), w0, [w1, w2], T)


def gdkd3_row(s, t, k, w0, w1, w2, T):
    order = sorted(range(len(t)), key=lambda i: (-t[i], i))
    g = np.full(len(t), 2)
    g[order[:k]] = 1
    g[order[0]] = 0
    return partition_row_loss(s, t, g, w0, [0., w1, w2], T)


def dkd_row(s, t, target, alpha, beta, T):
    g = np.ones(len(t), dtype=int)
    g[target] = 0
    return partition_row_loss(s, t, g, alpha, [0., beta], T)


def kd_row(s, t, T):
    return T * T * kl(softmax(t / T), softmax(s / T))


def gdkd_row_grad(s, t, k, w0, w1, w2, T):
    """Closed-form gradient of gdkd_row w.r.t. s (REFERENCE.md section 1)."""
    groups = topk_groups(t, k)
    p, q = softmax(s / T), softmax(t / T)
    grad = np.zeros_like(s)
    for g, w in ((0, w1), (1, w2)):
        m = groups == g
        P, Q = p[m].sum(), q[m].sum()
        grad[m] = T * (w0 * p[m] / P * (P - Q) + w * (p[m] / P - q[m] / Q))
    return grad


def adaptive_k_row(t, tau, T, max_k=None):
    """Smallest k whose top-k teacher mass reaches tau (exact sums)."""
    q = sorted((math.exp(x) for x in (t - t.max()) / T), reverse=True)
    total = math.fsum(q)
    k = next(k for k in range(1, len(q) + 1)
             if math.fsum(q[:k]) >= tau * total)
    return min(k, max_k or len(q))
