"""Triton kernels for the fused partitioned-KL loss (see ``fused.py``).

One launch computes, per pixel, the groups of the loss's
:class:`~.partition.PartitionSpec`, the loss and its closed-form gradient,
and the mean over valid pixels: each program sums its tile into
``partials`` and the last program to finish (an atomic ticket) adds the
partials in a fixed order, so the loss is deterministic run to run. The
ticket counter is reset by that last program, so a cached zero buffer is
reused without a memset launch.

The kernels read the spec as compile-time constants (:func:`constexprs`):
``RULE`` (``int(spec.rule)``), ``CUTS`` (the teacher-rank cut points),
``ADAPTIVE`` (one cut per row, read from a ``(B, P)`` tensor), ``DEPTH``
(the deepest rank that decides a group) and ``NUM_GROUPS``; the weights
are a tuple argument (:func:`weights`), so changing them compiles nothing.
The per-pixel algebra (group log-masses, the group KL, the leaf KLs and
the gradient coefficients, ``_pixel_terms``) is written once over tuples of
per-group values and shared by both kernels.

Layout: every tensor is addressed as ``(B, C, P)`` through its strides, so
``(B, C, H, W)`` maps (``P = H*W``, pixel stride 1) and ``(N, C)`` rows
(``B = 1``, ``P = N``, class stride 1) are read in place. Two kernels compute
the same thing (:func:`pick_kernels` orders them):

* ``_class_loop_kernel`` (maps of up to 32 classes, cut depth <= 8): each
  thread owns a pixel and walks its classes in registers, unrolled for the
  class count: no padding, no cross-thread reductions, the top ranks by
  insertion into ``DEPTH`` registers.
* ``_tile_kernel`` (the rest: rows, many classes, cut depth <= 32): a
  program holds a ``[BLOCK_C, BLOCK_P]`` tile (all classes, padded to a
  power of two, of ``BLOCK_P`` pixels), reduces over classes across
  threads and finds the top ranks in ``DEPTH`` selection rounds.

Both need a Triton that compiles tuples of tensors and tuple arguments
(3.6 and 3.8 are tested; 3.1 and 3.2 reject them); where a kernel fails to
compile, ``fused.py`` uses the next kernel or the torch path.

A third, small kernel (``_label_stats_kernel``) reads the labels once:
the number of valid pixels (for the mean) and the count, min and max of
labels that are neither ``ignore_index`` nor a class, for ``fused.py`` to
report without a host sync.

Importing this module needs ``triton``; ``fused.py`` imports it lazily.
Under ``TRITON_INTERPRET=1`` the kernels run on CPU tensors (tests).
"""
from typing import Optional, Sequence, Tuple

import torch
import triton
import triton.language as tl

from .partition import GroupRule, PartitionSpec

# -FLT_MAX: below every finite logit; -inf logits rank as it.
_LOWEST = tl.constexpr(-3.4028234663852886e38)
_LABEL = tl.constexpr(int(GroupRule.LABEL))


@triton.jit
def _pick(gid, values, NUM_GROUPS: tl.constexpr):
    """Each element gets its group's value (``values[gid]``)."""
    if NUM_GROUPS == 1:
        out = values[0] + tl.zeros(gid.shape, tl.float32)
    else:
        out = tl.where(gid == NUM_GROUPS - 2, values[NUM_GROUPS - 2],
                       values[NUM_GROUPS - 1])
        for j in tl.static_range(NUM_GROUPS - 2):
            out = tl.where(gid == NUM_GROUPS - 3 - j,
                           values[NUM_GROUPS - 3 - j], out)
    return out


@triton.jit
def _leaf_kl(a, zs, zt):
    """sum_i q^g_i log(q^g_i / p^g_i) from the group's sums; 0 if empty.

    ``a`` is sum_i exp(xt_i) (xt_i - xs_i) with exponents in base 2.
    """
    return tl.where(zt > 0.,
                    0.6931471805599453 * a / zt - tl.log(zt) + tl.log(zs), 0.)


@triton.jit
def _pixel_terms(partial_ptr, ms, mt, zs, zt, a, valid, inv_t, scale,
                 weights, NUM_GROUPS: tl.constexpr):
    """The pixels' losses and gradient coefficients from group statistics;
    stores the block's loss sum (without T**2) to its ``partial_ptr`` slot.

    Per group g (tuples of ``NUM_GROUPS`` per-pixel values): ``ms[g]`` /
    ``mt[g]`` the student / teacher max, ``zs[g]`` / ``zt[g]`` the sums of
    ``exp((x - m_g) / T)``, ``a[g]`` = sum et (xt - xs) in base 2.
    ``weights`` = ``(w_group, w_leaf_0, .., w_leaf_{G-1})``. The gradient of
    class i in group g is ``es_i cp[g] - et_i cq[g]``
    (docs/method.md):
    dL/ds_i = T [w_group p^g_i (P_g - Q_g) + w_g (p^g_i - q^g_i)] / n, with
    ``scale`` = T * loss_weight / n (0 for ignored pixels); coefficients of
    empty groups are 0 (no class picks them).

    Returns:
        tuple: ``(cp, cq)``, tuples of ``NUM_GROUPS`` coefficients.
    """
    # A non-finite logit leaves a NaN or inf in the sums: NaN (-inf logits
    # give exp(-inf) (-inf - x) = 0 * inf in a), and the pixel's loss is NaN.
    # Finite logits give finite sums and a poison of 0.
    poison = zs[0] + zt[0] + a[0]
    for g in tl.static_range(1, NUM_GROUPS):
        poison += zs[g] + zt[g] + a[g]
    row = poison * 0.
    # q^g_i log(q^g_i / p^g_i) summed over g = (sum et*(xt-xs))/Zt - log Zt
    # + log Zs; 0 log 0 = 0 where the teacher's probability is 0.
    for g in tl.static_range(NUM_GROUPS):
        row += weights[1 + g] * _leaf_kl(a[g], zs[g], zt[g])
    scale = tl.where(valid, scale, 0.)
    cp = ()
    cq = ()
    if NUM_GROUPS == 1:
        cp = (tl.where(zs[0] > 0., scale * weights[1] / zs[0], 0.), )
        cq = (tl.where(zt[0] > 0., scale * weights[1] / zt[0], 0.), )
    else:
        # Group log-masses: u_g = (m_g - M) / T + log Z_g, log P_g = u_g -
        # logsumexp(u); an empty group has Z_g = 0 and mass 0.
        top_s = ms[0]
        top_t = mt[0]
        for g in tl.static_range(1, NUM_GROUPS):
            top_s = tl.maximum(top_s, ms[g])
            top_t = tl.maximum(top_t, mt[g])
        us = ()
        ut = ()
        sum_s = tl.zeros(row.shape, tl.float32)
        sum_t = tl.zeros(row.shape, tl.float32)
        for g in tl.static_range(NUM_GROUPS):
            us = us + ((ms[g] - top_s) * inv_t + tl.log(zs[g]), )
            ut = ut + ((mt[g] - top_t) * inv_t + tl.log(zt[g]), )
            sum_s += tl.exp(us[g])
            sum_t += tl.exp(ut[g])
        lse_s = tl.log(sum_s)
        lse_t = tl.log(sum_t)
        group_kl = tl.zeros(row.shape, tl.float32)
        for g in tl.static_range(NUM_GROUPS):
            lq = ut[g] - lse_t
            lp = us[g] - lse_s
            big_q = tl.exp(lq)
            big_p = tl.exp(lp)
            group_kl += tl.where(big_q > 0., big_q * (lq - lp), 0.)
            cp = cp + (tl.where(
                zs[g] > 0.,
                scale * (weights[0] * (big_p - big_q) + weights[1 + g]) /
                zs[g], 0.), )
            cq = cq + (tl.where(zt[g] > 0., scale * weights[1 + g] / zt[g],
                                0.), )
        row += weights[0] * group_kl
    tl.store(partial_ptr + tl.program_id(1) * tl.num_programs(0) +
             tl.program_id(0), tl.sum(tl.where(valid, row, 0.), axis=0))
    return cp, cq


@triton.jit
def _pixel_rows(lab_ptr, k_ptr, pid_b, l_sb, l_sp, pix, pix_ok, P,
                ignore_index, HAS_LABELS: tl.constexpr,
                HAS_IGNORE: tl.constexpr, ADAPTIVE: tl.constexpr):
    """A block's labels, valid pixels and per-row cut (``ADAPTIVE``).

    Labels are used as they are: one that is neither ``ignore_index`` nor a
    class forms an empty label group (``_label_stats_kernel`` reports it).
    """
    lab = tl.zeros(pix.shape, tl.int32)
    valid = pix_ok
    if HAS_LABELS:
        lab = tl.load(lab_ptr + pid_b * l_sb + pix * l_sp, mask=pix_ok,
                      other=0).to(tl.int32)
        if HAS_IGNORE:
            valid = pix_ok & (lab != ignore_index)
    row_k = lab
    if ADAPTIVE:
        row_k = tl.load(k_ptr + pid_b * P + pix, mask=pix_ok, other=1)
    return lab, valid, row_k


@triton.jit
def _inverse_count(count_ptr, num_rows, COUNT_ON_DEVICE: tl.constexpr):
    """1 / the number of valid rows (read late: a short live range)."""
    if COUNT_ON_DEVICE:
        count = tl.load(count_ptr)
    else:
        count = num_rows
    return 1. / tl.maximum(count, 1.)


@triton.jit
def _rank_of_group(r: tl.constexpr, CUTS: tl.constexpr):
    """The group of teacher rank ``r`` (static cuts): #{j : CUTS[j] <= r}."""
    g = 0
    for j in tl.static_range(len(CUTS)):
        if CUTS[j] <= r:
            g += 1
    return g


@triton.jit
def _tile_rank_groups(t, cls, C, row_k, CUTS: tl.constexpr,
                      ADAPTIVE: tl.constexpr, DEPTH: tl.constexpr,
                      NUM_GROUPS: tl.constexpr, BLOCK_C: tl.constexpr):
    """Group ids by teacher rank and the teacher's group maxima (tile).

    ``DEPTH`` rounds: the largest remaining teacher logit, and among equal
    values the lowest class index -- a stable descending sort's top ranks.
    Selected classes drop to -inf; real -inf logits (and padding) rank as
    -FLT_MAX so they stay above the selected ones. Padding classes get
    group id ``NUM_GROUPS``, in no group.
    """
    key = tl.maximum(t, _LOWEST)
    gid = tl.where(cls < C, NUM_GROUPS - 1, NUM_GROUPS)
    tops = ()
    for r in tl.static_range(DEPTH):
        top = tl.max(key, axis=0)
        first = tl.min(tl.where(key == top[None, :], cls, BLOCK_C), axis=0)
        hit = cls == first[None, :]
        key = tl.where(hit, float('-inf'), key)
        if ADAPTIVE:
            gid = tl.where(hit, tl.where(r < row_k, 0, 1)[None, :], gid)
        else:
            gid = tl.where(hit, _rank_of_group(r, CUTS), gid)
        tops = tops + (top, )
    tops = tops + (tl.max(key, axis=0), )  # the largest beyond DEPTH
    # A group's teacher max is the logit at its first rank.
    if ADAPTIVE:
        rest = tops[DEPTH]
        for r in tl.static_range(1, DEPTH):
            rest = tl.where(row_k == r, tops[r], rest)
        mt = (tops[0], rest)
    else:
        mt = (tops[0], )
        for j in tl.static_range(len(CUTS)):
            mt = mt + (tops[CUTS[j]], )
    return gid, mt


@triton.jit
def _group_max(x, gid, g: tl.constexpr):
    return tl.max(tl.where(gid == g, x, float('-inf')), axis=0)


@triton.jit
def _group_sum(x, gid, g: tl.constexpr):
    return tl.sum(tl.where(gid == g, x, 0.), axis=0)


@triton.jit
def _broadcast_rows(values, NUM_GROUPS: tl.constexpr):
    """Per-pixel values as ``[1, BLOCK_P]`` rows of a tile."""
    out = ()
    for g in tl.static_range(NUM_GROUPS):
        out = out + (values[g][None, :], )
    return out


# Strides stay specialised (a unit pixel stride gives 16-byte loads along
# pixels). Hiding it to get one pixel per thread compiled to ~1900 shuffles and
# 5 KB of spills per thread with Triton 3.6 and ran 25 ms at full resolution
# on an H200 (docs/benchmarks.md).
@triton.jit
def _tile_kernel(
        s_ptr, t_ptr, lab_ptr, k_ptr, grad_ptr, partial_ptr, ticket_ptr,
        loss_ptr, count_ptr, C, P, s_sb, s_sc, s_sp, t_sb, t_sc, t_sp, g_sb,
        g_sc, g_sp, l_sb, l_sp, inv_t, grad_coef, loss_coef, weights,
        ignore_index, num_rows, RULE: tl.constexpr, CUTS: tl.constexpr,
        ADAPTIVE: tl.constexpr, DEPTH: tl.constexpr,
        NUM_GROUPS: tl.constexpr, HAS_LABELS: tl.constexpr,
        HAS_IGNORE: tl.constexpr, COUNT_ON_DEVICE: tl.constexpr,
        WRITE_GRAD: tl.constexpr, BLOCK_C: tl.constexpr,
        BLOCK_P: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_b = tl.program_id(1)
    pix = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    pix_ok = pix < P
    cls = tl.arange(0, BLOCK_C)[:, None]
    lab, valid, row_k = _pixel_rows(lab_ptr, k_ptr, pid_b, l_sb, l_sp, pix,
                                    pix_ok, P, ignore_index, HAS_LABELS,
                                    HAS_IGNORE, ADAPTIVE)
    # Padding classes read -FLT_MAX (-inf once cast to a 16-bit dtype): zero
    # probability beside any real logit, never in a top rank. Ignored pixels
    # are read too: masking their loads would cost the 16-byte loads along
    # pixels.
    tile_ok = (cls < C) & pix_ok[None, :]
    s = tl.load(s_ptr + pid_b * s_sb + cls * s_sc + pix[None, :] * s_sp,
                mask=tile_ok, other=_LOWEST).to(tl.float32)
    t = tl.load(t_ptr + pid_b * t_sb + cls * t_sc + pix[None, :] * t_sp,
                mask=tile_ok, other=_LOWEST).to(tl.float32)

    # Group ids and the teacher's group maxima.
    if RULE == _LABEL:
        gid = tl.where(cls == lab[None, :], 0, 1)
        mt = (_group_max(t, gid, 0), _group_max(t, gid, 1))
    elif NUM_GROUPS == 1:
        gid = tl.zeros(t.shape, tl.int32)
        mt = (tl.max(t, axis=0), )
    else:
        gid, mt = _tile_rank_groups(t, cls, C, row_k, CUTS, ADAPTIVE, DEPTH,
                                    NUM_GROUPS, BLOCK_C)
    if NUM_GROUPS == 1:
        ms = (tl.max(s, axis=0), )
    else:
        ms = ()
        for g in tl.static_range(NUM_GROUPS):
            ms = ms + (_group_max(s, gid, g), )

    # Each group's log-softmax is taken relative to the group's own max, so
    # a spread of 1e4/T between groups costs no precision. Exponents are in
    # base 2 (log2(e) folded into 1/T): one MUFU.EX2 per exponential.
    inv_t2 = inv_t * 1.4426950408889634
    xs = (s - _pick(gid, _broadcast_rows(ms, NUM_GROUPS), NUM_GROUPS)) * \
        inv_t2
    xt = (t - _pick(gid, _broadcast_rows(mt, NUM_GROUPS), NUM_GROUPS)) * \
        inv_t2
    es = tl.exp2(xs)
    et = tl.exp2(xt)
    # No select on et > 0: et * (xt - xs) is 0 where et underflows and NaN
    # for a -inf logit (0 * inf), as _pixel_terms needs; padding rows are
    # masked (their xt - xs may be -inf + inf).
    etd = tl.where(cls < C, et * (xt - xs), 0.)
    if NUM_GROUPS == 1:
        zs = (tl.sum(es, axis=0), )
        zt = (tl.sum(et, axis=0), )
        a = (tl.sum(etd, axis=0), )
    else:
        zs = ()
        zt = ()
        a = ()
        for g in tl.static_range(NUM_GROUPS):
            zs = zs + (_group_sum(es, gid, g), )
            zt = zt + (_group_sum(et, gid, g), )
            a = a + (_group_sum(etd, gid, g), )
    inv_n = _inverse_count(count_ptr, num_rows, COUNT_ON_DEVICE)
    cp, cq = _pixel_terms(partial_ptr, ms, mt, zs, zt, a, valid, inv_t,
                          grad_coef * inv_n, weights, NUM_GROUPS)
    if WRITE_GRAD:
        grad = es * _pick(gid, _broadcast_rows(cp, NUM_GROUPS), NUM_GROUPS) \
            - et * _pick(gid, _broadcast_rows(cq, NUM_GROUPS), NUM_GROUPS)
        if HAS_IGNORE:  # 0 even where an ignored pixel's logits are NaN
            grad = tl.where(valid[None, :], grad, 0.)
        tl.store(grad_ptr + pid_b * g_sb + cls * g_sc + pix[None, :] * g_sp,
                 grad.to(grad_ptr.dtype.element_ty), mask=tile_ok)

    _finish_sum(partial_ptr, ticket_ptr, loss_ptr, loss_coef * inv_n)


@triton.jit
def _top_registers(ts, C: tl.constexpr, DEPTH: tl.constexpr):
    """Per pixel, the ``DEPTH`` largest teacher logits, and the first max.

    ``ts``: the C teacher logit vectors. The largest, with repeats, are
    kept sorted in ``DEPTH`` registers (each slot takes the larger of itself
    and what the slot above gives up). ``first`` is the lowest class index
    holding the max. -inf logits rank as -FLT_MAX.

    Returns:
        tuple: ``(top, first)``.
    """
    top = ()
    for j in tl.static_range(DEPTH):
        top = top + (tl.zeros(ts[0].shape, tl.float32) + float('-inf'), )
    first = tl.zeros(ts[0].shape, tl.int32)
    for c in tl.static_range(C):
        key = tl.maximum(ts[c], _LOWEST)
        first = tl.where(key > top[0], c, first)
        new = (tl.maximum(top[0], key), )
        for j in tl.static_range(1, DEPTH):
            new = new + (tl.maximum(top[j], tl.minimum(top[j - 1], key)), )
        top = new
    return top, first


@triton.jit
def _cut_thresholds(top, row_k, CUTS: tl.constexpr, ADAPTIVE: tl.constexpr,
                    DEPTH: tl.constexpr):
    """Per cut ``c``: the teacher's c-th largest logit ``thr`` and ``need``,
    how many of the c largest equal it. The top-c classes are those above
    ``thr`` and the first ``need`` (in class order) equal to it -- a stable
    descending sort's top c. ``ADAPTIVE``: one cut, ``row_k`` per pixel.

    Returns:
        tuple: ``(thr, need)``, one entry per cut.
    """
    if ADAPTIVE:
        thr = top[0]
        for j in tl.static_range(1, DEPTH):
            thr = tl.where(row_k > j, top[j], thr)
        need = tl.zeros(thr.shape, tl.int32)
        for j in tl.static_range(DEPTH):
            need += ((top[j] == thr) & (row_k > j)).to(tl.int32)
        thrs = (thr, )
        needs = (need, )
    else:
        thrs = ()
        needs = ()
        for j in tl.static_range(len(CUTS)):
            thr = top[CUTS[j] - 1]
            need = tl.zeros(thr.shape, tl.int32)
            for i in tl.static_range(DEPTH):
                if i < CUTS[j]:
                    need += (top[i] == thr).to(tl.int32)
            thrs = thrs + (thr, )
            needs = needs + (need, )
    return thrs, needs


@triton.jit
def _outside_cut(key, thr, need, tied):
    """Whether a class is beyond a cut, and the updated tie count."""
    equal = key == thr
    inside = (key > thr) | (equal & (tied < need))
    return tl.where(inside, 0, 1), tied + equal.to(tl.int32)


@triton.jit
def _rank_group(c: tl.constexpr, key, thrs, needs, tied, first,
                CUTS: tl.constexpr, ADAPTIVE: tl.constexpr,
                NUM_CUTS: tl.constexpr):
    """Class c's group by teacher rank (the number of cuts it is beyond)
    and the cuts' updated tie counts; a cut at 1 is the first max."""
    gid = tl.zeros(key.shape, tl.int32)
    new_tied = ()
    for j in tl.static_range(NUM_CUTS):
        if ADAPTIVE:
            outside, count = _outside_cut(key, thrs[j], needs[j], tied[j])
        elif CUTS[j] == 1:
            outside = tl.where(first == c, 0, 1)
            count = tied[j]
        else:
            outside, count = _outside_cut(key, thrs[j], needs[j], tied[j])
        gid += outside
        new_tied = new_tied + (count, )
    return gid, new_tied


@triton.jit
def _max_by_group(m, x, gid, NUM_GROUPS: tl.constexpr):
    """Each group's running max updated with x where x is in the group."""
    out = ()
    for g in tl.static_range(NUM_GROUPS):
        out = out + (tl.maximum(m[g], tl.where(gid == g, x, float('-inf'))),
                     )
    return out


@triton.jit
def _class_loop_kernel(
        s_ptr, t_ptr, lab_ptr, k_ptr, grad_ptr, partial_ptr, ticket_ptr,
        loss_ptr, count_ptr, C: tl.constexpr, P, s_sb, s_sc, s_sp, t_sb,
        t_sc, t_sp, g_sb, g_sc, g_sp, l_sb, l_sp, inv_t, grad_coef,
        loss_coef, weights, ignore_index, num_rows, RULE: tl.constexpr,
        CUTS: tl.constexpr, ADAPTIVE: tl.constexpr, DEPTH: tl.constexpr,
        NUM_GROUPS: tl.constexpr, HAS_LABELS: tl.constexpr,
        HAS_IGNORE: tl.constexpr, COUNT_ON_DEVICE: tl.constexpr,
        WRITE_GRAD: tl.constexpr, BLOCK_P: tl.constexpr):
    """The same loss as ``_tile_kernel`` for maps (pixel stride 1): each
    thread owns whole pixels and walks the classes, so nothing is padded to
    a power of two and no reduction crosses threads. The loops over classes
    are unrolled (C is a compile-time constant) and the per-class values
    live in tuples of registers: logits are read once and each exponential
    is computed once.
    """
    pid_p = tl.program_id(0)
    pid_b = tl.program_id(1)
    pix = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    pix_ok = pix < P
    lab, valid, row_k = _pixel_rows(lab_ptr, k_ptr, pid_b, l_sb, l_sp, pix,
                                    pix_ok, P, ignore_index, HAS_LABELS,
                                    HAS_IGNORE, ADAPTIVE)
    # Ignored pixels read zeros: whatever they hold, their gradient is 0.
    zero = tl.zeros([BLOCK_P], tl.float32)
    ss = ()
    ts = ()
    for c in tl.static_range(C):
        ss = ss + (tl.load(s_ptr + pid_b * s_sb + c * s_sc + pix * s_sp,
                           mask=valid, other=0.).to(tl.float32), )
        ts = ts + (tl.load(t_ptr + pid_b * t_sb + c * t_sc + pix * t_sp,
                           mask=valid, other=0.).to(tl.float32), )
    NUM_CUTS: tl.constexpr = NUM_GROUPS - 1
    if RULE != _LABEL:
        if NUM_GROUPS > 1:
            top, first = _top_registers(ts, C, DEPTH)
            thrs, needs = _cut_thresholds(top, row_k, CUTS, ADAPTIVE, DEPTH)
            tied = ()
            for j in tl.static_range(NUM_CUTS):
                tied = tied + (tl.zeros([BLOCK_P], tl.int32), )

    # Group ids (kept per class) and group maxima.
    ms = ()
    for g in tl.static_range(NUM_GROUPS):
        ms = ms + (zero + float('-inf'), )
    mt = ms
    gids = ()
    for c in tl.static_range(C):
        if RULE == _LABEL:
            gid = tl.where(lab == c, 0, 1)
        elif NUM_GROUPS == 1:
            gid = tl.zeros([BLOCK_P], tl.int32)
        else:
            gid, tied = _rank_group(c, tl.maximum(ts[c], _LOWEST), thrs,
                                    needs, tied, first, CUTS, ADAPTIVE,
                                    NUM_CUTS)
        gids = gids + (gid, )
        ms = _max_by_group(ms, ss[c], gid, NUM_GROUPS)
        mt = _max_by_group(mt, ts[c], gid, NUM_GROUPS)

    # Each group's log-softmax relative to the group's own max, exponents in
    # base 2 (log2(e) folded into 1/T), as in _tile_kernel. A group's sums
    # are multiply-adds by its 0/1 indicator; etd = et * (xt - xs) is 0
    # where et underflows and NaN for a -inf logit (see _pixel_terms).
    inv_t2 = inv_t * 1.4426950408889634
    zs = ()
    for g in tl.static_range(NUM_GROUPS):
        zs = zs + (zero, )
    zt = zs
    a = zs
    es_all = ()
    et_all = ()
    for c in tl.static_range(C):
        gid = gids[c]
        xs = (ss[c] - _pick(gid, ms, NUM_GROUPS)) * inv_t2
        xt = (ts[c] - _pick(gid, mt, NUM_GROUPS)) * inv_t2
        es = tl.exp2(xs)
        et = tl.exp2(xt)
        etd = et * (xt - xs)
        es_all = es_all + (es, )
        et_all = et_all + (et, )
        new_zs = ()
        new_zt = ()
        new_a = ()
        for g in tl.static_range(NUM_GROUPS):
            if NUM_GROUPS == 1:
                new_zs = (zs[0] + es, )
                new_zt = (zt[0] + et, )
                new_a = (a[0] + etd, )
            else:
                inside = tl.where(gid == g, 1., 0.)
                new_zs = new_zs + (zs[g] + inside * es, )
                new_zt = new_zt + (zt[g] + inside * et, )
                new_a = new_a + (a[g] + tl.where(gid == g, etd, 0.), )
        zs = new_zs
        zt = new_zt
        a = new_a
    inv_n = _inverse_count(count_ptr, num_rows, COUNT_ON_DEVICE)
    cp, cq = _pixel_terms(partial_ptr, ms, mt, zs, zt, a, valid, inv_t,
                          grad_coef * inv_n, weights, NUM_GROUPS)

    if WRITE_GRAD:
        for c in tl.static_range(C):
            gid = gids[c]
            grad = es_all[c] * _pick(gid, cp, NUM_GROUPS) - \
                et_all[c] * _pick(gid, cq, NUM_GROUPS)
            tl.store(grad_ptr + pid_b * g_sb + c * g_sc + pix * g_sp,
                     grad.to(grad_ptr.dtype.element_ty), mask=pix_ok)

    _finish_sum(partial_ptr, ticket_ptr, loss_ptr, loss_coef * inv_n)


@triton.jit
def _finish_sum(partial_ptr, ticket_ptr, out_ptr, factor):
    """The last program to arrive adds all partials in a fixed order."""
    num_programs = tl.num_programs(0) * tl.num_programs(1)
    ticket = tl.atomic_add(ticket_ptr, 1, sem='acq_rel')
    if ticket == num_programs - 1:
        acc = tl.zeros([1024], tl.float32)
        for start in range(0, num_programs, 1024):
            idx = start + tl.arange(0, 1024)
            acc += tl.load(partial_ptr + idx, mask=idx < num_programs,
                           other=0., cache_modifier='.cg')
        tl.store(out_ptr, tl.sum(acc, axis=0) * factor)
        tl.atomic_xchg(ticket_ptr, 0)


@triton.jit
def _label_stats_kernel(lab_ptr, P, l_sb, l_sp, ignore_index, C,
                        partial_ptr, bad_partial_ptr, ticket_ptr, count_ptr,
                        bad_ptr, HAS_IGNORE: tl.constexpr,
                        BLOCK: tl.constexpr):
    """The number of valid labels (``count_ptr``, float32) and the count,
    min and max of labels that are neither ``ignore_index`` nor in
    ``[0, C)`` (``bad_ptr``, int64 x 3)."""
    pid_p = tl.program_id(0)
    pid_b = tl.program_id(1)
    pix = pid_p * BLOCK + tl.arange(0, BLOCK)
    pix_ok = pix < P
    lab = tl.load(lab_ptr + pid_b * l_sb + pix * l_sp, mask=pix_ok,
                  other=0).to(tl.int64)
    valid = pix_ok
    if HAS_IGNORE:
        valid = pix_ok & (lab != ignore_index)
    bad = valid & ((lab < 0) | (lab >= C))
    num_programs = tl.num_programs(0) * tl.num_programs(1)
    slot = pid_b * tl.num_programs(0) + pid_p
    tl.store(partial_ptr + slot, tl.sum(valid.to(tl.float32), axis=0))
    tl.store(bad_partial_ptr + slot, tl.sum(bad.to(tl.int64), axis=0))
    tl.store(bad_partial_ptr + num_programs + slot,
             tl.min(tl.where(bad, lab, 9223372036854775807), axis=0))
    tl.store(bad_partial_ptr + 2 * num_programs + slot,
             tl.max(tl.where(bad, lab, -9223372036854775807), axis=0))
    ticket = tl.atomic_add(ticket_ptr, 1, sem='acq_rel')
    if ticket == num_programs - 1:
        count = tl.zeros([1024], tl.float32)
        bad_count = tl.zeros([1024], tl.int64)
        low = tl.zeros([1024], tl.int64) + 9223372036854775807
        high = tl.zeros([1024], tl.int64) - 9223372036854775807
        for start in range(0, num_programs, 1024):
            idx = start + tl.arange(0, 1024)
            ok = idx < num_programs
            count += tl.load(partial_ptr + idx, mask=ok, other=0.,
                             cache_modifier='.cg')
            bad_count += tl.load(bad_partial_ptr + idx, mask=ok, other=0,
                                 cache_modifier='.cg')
            low = tl.minimum(low, tl.load(
                bad_partial_ptr + num_programs + idx, mask=ok,
                other=9223372036854775807, cache_modifier='.cg'))
            high = tl.maximum(high, tl.load(
                bad_partial_ptr + 2 * num_programs + idx, mask=ok,
                other=-9223372036854775807, cache_modifier='.cg'))
        tl.store(count_ptr, tl.sum(count, axis=0))
        tl.store(bad_ptr, tl.sum(bad_count, axis=0))
        tl.store(bad_ptr + 1, tl.min(low, axis=0))
        tl.store(bad_ptr + 2, tl.max(high, axis=0))
        tl.atomic_xchg(ticket_ptr, 0)


@triton.jit
def _scale_kernel(x_ptr, n, factor_ptr, BLOCK: tl.constexpr):
    """``x *= factor`` in place; nothing is read or written if factor == 1."""
    factor = tl.load(factor_ptr).to(tl.float32)
    if factor != 1.:
        step = tl.num_programs(0) * BLOCK
        for start in range(tl.program_id(0) * BLOCK, n, step):
            idx = start + tl.arange(0, BLOCK)
            x = tl.load(x_ptr + idx, mask=idx < n)
            tl.store(x_ptr + idx, (x.to(tl.float32) * factor).to(x.dtype),
                     mask=idx < n)


def _cdiv(a: int, b: int) -> int:
    # triton.cdiv goes through Triton's constexpr-function wrapper, ~7 us a
    # call from Python: host time on a launch-bound path.
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


_TICKETS = {}


def _ticket(device: torch.device) -> torch.Tensor:
    """A zero int32 counter per device and stream (kernels leave it 0)."""
    key = (device, torch.cuda.current_stream(device).cuda_stream
           if device.type == 'cuda' else 0)
    if key not in _TICKETS:
        _TICKETS[key] = torch.zeros(1, dtype=torch.int32, device=device)
    return _TICKETS[key]


KERNELS = ('class_loop', 'tile')

# The limits of the kernels, in one place. The class loop is unrolled at
# compile time (one kernel per C and spec) and holds every class's values
# and the DEPTH largest teacher logits in registers: up to 32 classes and
# depth 8 (beyond, registers spill). The tile kernel runs DEPTH selection
# rounds, each two cross-thread reductions, unrolled: depth 32 at most. Both
# keep a tuple of per-group values per statistic: at most 5 groups (4 cuts).
# Anything beyond goes to the torch path.
MAX_LOOP_CLASSES = 32
MAX_LOOP_DEPTH = 8
MAX_TILE_DEPTH = 32
MAX_GROUPS = 5
# The grouping rules the kernels form groups for (the rest: the torch path).
KERNEL_RULES = (GroupRule.TEACHER_RANK, GroupRule.LABEL)


def constexprs(spec: PartitionSpec, num_classes: int) -> dict:
    """The kernels' compile-time description of ``spec``."""
    return dict(RULE=int(spec.rule), CUTS=spec.cuts,
                ADAPTIVE=spec.adaptive is not None,
                DEPTH=spec.depth(num_classes), NUM_GROUPS=spec.num_groups)


def weights(spec: PartitionSpec) -> Tuple[float, ...]:
    """The kernels' ``weights`` argument: ``(w_group, w_leaf_0, ...)``.

    Passed as a tuple of scalars rather than a device tensor: no per-call
    copy to the device or cache of one, and a new weight compiles nothing.
    """
    return (spec.group_weight, ) + spec.leaf_weights


def limit_error(kernel: str, spec: PartitionSpec,
                num_classes: int) -> Optional[str]:
    """Why ``kernel`` cannot compute ``spec`` (None if it can)."""
    if spec.rule not in KERNEL_RULES:
        return f'the Triton kernels have no groups for {spec.rule!r}'
    if spec.kl_type != 'forward':
        return (f'the Triton kernels compute the forward within-group KL '
                f'only, got kl_type={spec.kl_type!r}')
    deepest = spec.depth(num_classes)
    if spec.num_groups > MAX_GROUPS:
        return (f'the Triton kernels take up to {MAX_GROUPS} groups, got '
                f'{spec.num_groups}')
    if kernel == 'class_loop' and (num_classes > MAX_LOOP_CLASSES
                                   or deepest > MAX_LOOP_DEPTH):
        return (f'the class_loop kernel takes up to {MAX_LOOP_CLASSES} '
                f'classes and cut depth <= {MAX_LOOP_DEPTH}, got '
                f'C={num_classes}, depth {deepest}')
    if kernel == 'tile' and deepest > MAX_TILE_DEPTH:
        return (f'the tile kernel takes cut depth <= {MAX_TILE_DEPTH}, got '
                f'{deepest}')
    return None


def pick_kernels(s3: torch.Tensor, t3: torch.Tensor, grad3,
                 spec: PartitionSpec) -> Tuple[str, ...]:
    """The kernels that can compute ``spec`` here, preferred first.

    ``'class_loop'`` for maps (unit pixel stride everywhere) within its
    limits, then ``'tile'`` within its own; empty: the torch path.
    """
    num_classes = s3.shape[1]
    tensors = [s3, t3] + ([grad3] if grad3 is not None else [])
    maps = all(x.stride(2) == 1 for x in tensors) and s3.shape[2] > 1
    return tuple(
        k for k in KERNELS
        if limit_error(k, spec, num_classes) is None
        and (k != 'class_loop' or maps))


def default_config(num_classes: int, kernel: str = 'tile'):
    """``(BLOCK_P, num_warps)`` for a kernel.

    ``'tile'`` (all classes of BLOCK_P pixels): C <= 32: one warp of 32
    pixels, the fastest of the block sizes swept at full resolution on an
    H200 for float32 and bfloat16 logits (docs/benchmarks.md). Larger C:
    ~4096 tile elements over 4 warps, which compiles without spills for
    C = 150 and C = 1000. ``'class_loop'``: one pixel per thread, 4 warps.
    """
    if kernel == 'class_loop':
        return 128, 4
    block_c = next_power_of_2(num_classes)
    if block_c <= 32:
        return 32, 1
    return max(1, 4096 // block_c), 4


def _label_stats(labels2: torch.Tensor, num_classes: int,
                 ignore_index: Optional[int]):
    """Launch ``_label_stats_kernel``: (valid count, bad-label stats)."""
    B, P = labels2.shape
    device = labels2.device
    grid = (_cdiv(P, 1024), B)
    programs = grid[0] * grid[1]
    partials = torch.empty(programs, dtype=torch.float32, device=device)
    bad_partials = torch.empty(3 * programs, dtype=torch.int64,
                               device=device)
    count = torch.empty((), dtype=torch.float32, device=device)
    bad = torch.empty(3, dtype=torch.int64, device=device)
    _label_stats_kernel[grid](
        labels2, P, labels2.stride(0), labels2.stride(1),
        0 if ignore_index is None else ignore_index, num_classes, partials,
        bad_partials, _ticket(device), count, bad,
        HAS_IGNORE=ignore_index is not None, BLOCK=1024)
    return count, bad


def launch(s3: torch.Tensor, t3: torch.Tensor, labels2, row_k, grad3,
           spec: PartitionSpec, scale: float, ignore_index: Optional[int],
           mean: bool, kernel: str, sizes: Sequence[int] = ()):
    """Run ``kernel`` on ``(B, C, P)`` views.

    Args:
        s3, t3: student / teacher logits viewed as ``(B, C, P)``.
        labels2: ``(B, P)`` integer labels or None.
        row_k: ``(B, P)`` contiguous int32 per-row cut (adaptive specs).
        grad3: ``(B, C, P)`` output for ``dLoss/ds`` or None.
        spec: the partition.
        scale: multiplier of the loss (loss_weight).
        ignore_index: label of skipped rows (None: none skipped).
        mean: divide by the number of valid rows (else: sum).
        kernel: one of :data:`KERNELS`, within its limits
            (:func:`limit_error`).
        sizes: ``(BLOCK_P, num_warps)`` (default: :func:`default_config`).

    Returns:
        tuple: ``(loss, bad_labels)``: the 0-dim float32 loss and, with
        labels, an int64 ``(3,)`` device tensor (count, min, max of labels
        that are neither ``ignore_index`` nor a class), else None.
    """
    B, C, P = s3.shape
    device = s3.device
    loss = torch.empty((), dtype=torch.float32, device=device)
    ticket = _ticket(device)
    count = bad = None
    if labels2 is not None:
        count, bad = _label_stats(labels2, C, ignore_index)
    count_on_device = count is not None and mean and ignore_index is not None
    g = grad3 if grad3 is not None else s3
    lab = labels2 if labels2 is not None else s3
    temperature = spec.temperature
    block_p, num_warps = sizes or default_config(C, kernel)
    grid = (_cdiv(P, block_p), B)
    partials = torch.empty(grid[0] * grid[1], dtype=torch.float32,
                           device=device)
    args = (s3, t3, lab, row_k if row_k is not None else s3, g, partials,
            ticket, loss, count if count_on_device else loss, C, P,
            s3.stride(0), s3.stride(1), s3.stride(2),
            t3.stride(0), t3.stride(1), t3.stride(2),
            g.stride(0), g.stride(1), g.stride(2),
            labels2.stride(0) if labels2 is not None else 0,
            labels2.stride(1) if labels2 is not None else 0,
            1. / temperature, temperature * scale, temperature**2 * scale,
            weights(spec), 0 if ignore_index is None else ignore_index,
            float(B * P) if mean else 1.)
    meta = dict(constexprs(spec, C), HAS_LABELS=labels2 is not None,
                HAS_IGNORE=labels2 is not None and ignore_index is not None,
                COUNT_ON_DEVICE=count_on_device,
                WRITE_GRAD=grad3 is not None, BLOCK_P=block_p,
                num_warps=num_warps)
    if kernel == 'class_loop':
        _class_loop_kernel[grid](*args, **meta)
    else:
        _tile_kernel[grid](*args, BLOCK_C=next_power_of_2(C), **meta)
    return loss, bad


def scale_(x: torch.Tensor, factor: torch.Tensor) -> None:
    """``x *= factor`` (a 0-dim device tensor) without a host sync."""
    n = x.numel()
    block = 4096
    if x.device.type == 'cuda':
        sms = torch.cuda.get_device_properties(x.device).multi_processor_count
    else:
        sms = 1
    grid = (max(1, min(_cdiv(n, block), 4 * sms)), )
    _scale_kernel[grid](x, n, factor.reshape(()), BLOCK=block)
