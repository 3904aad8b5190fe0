"""Triton kernels for the fused partitioned-KL loss (see ``fused.py``).

One launch computes, per pixel, the group partition, the loss and its
closed-form gradient, and the mean over valid pixels: each program sums its
tile into ``partials`` and the last program to finish (an atomic ticket) adds
the partials in a fixed order, so the loss is deterministic run to run. The
ticket counter is reset by that last program, so a cached zero buffer is
reused without a memset launch.

Layout: every tensor is addressed as ``(B, C, P)`` through its strides, so
``(B, C, H, W)`` maps (``P = H*W``, pixel stride 1) and ``(N, C)`` rows
(``B = 1``, ``P = N``, class stride 1) are read in place. Two kernels compute
the same thing (:func:`pick_kernel` chooses):

* ``_class_loop_kernel`` (maps of up to 32 classes, k <= 8): each thread
  owns a pixel and walks its classes in registers, unrolled for the class
  count: no padding, no cross-thread reductions, the top-k by insertion.
  About 0.4x the tile kernel's machine instructions per pixel for GDKD at
  C = 19 (``tools/analysis_tools/kernel_sass.py``). Needs a Triton with
  tuples of tensors (not 3.1/3.2); if it fails to compile, :func:`launch`
  falls back to the tile kernel.
* ``_partitioned_kl_kernel`` (the rest: rows, many classes): a program
  holds a ``[BLOCK_C, BLOCK_P]`` tile (all classes, padded to a power of
  two, of ``BLOCK_P`` pixels) and reduces over classes across threads.

Importing this module needs ``triton``; ``fused.py`` imports it lazily.
Under ``TRITON_INTERPRET=1`` the kernels run on CPU tensors (tests).
"""
import warnings

import torch
import triton
import triton.language as tl


@triton.jit
def _pick(gid, v0, v1, v2, NUM_GROUPS: tl.constexpr):
    """Each element gets its group's value (``v_g`` broadcast to gid)."""
    if NUM_GROUPS == 1:
        out = v0 + tl.zeros(gid.shape, tl.float32)
    elif NUM_GROUPS == 2:
        out = tl.where(gid == 0, v0, v1)
    else:
        out = tl.where(gid == 0, v0, tl.where(gid == 1, v1, v2))
    return out


@triton.jit
def _group_max(x, gid, g: tl.constexpr):
    return tl.max(tl.where(gid == g, x, float('-inf')), axis=0)


@triton.jit
def _group_sum(x, gid, g: tl.constexpr):
    return tl.sum(tl.where(gid == g, x, 0.), axis=0)


@triton.jit
def _leaf_kl(a, zs, zt):
    """sum_i q^g_i log(q^g_i / p^g_i) from the group's sums; 0 if empty.

    ``a`` is sum_i exp(xt_i) (xt_i - xs_i) with exponents in base 2.
    """
    return tl.where(zt > 0.,
                    0.6931471805599453 * a / zt - tl.log(zt) + tl.log(zs), 0.)


@triton.jit
def _pixel_terms(partial_ptr, ms0, ms1, ms2, mt0, mt1, mt2, zs0, zs1, zs2,
                 zt0, zt1, zt2, a0, a1, a2, valid, inv_t, scale, w_bin, w_g0,
                 w_g1, w_g2, NUM_GROUPS: tl.constexpr):
    """The pixels' losses and gradient coefficients from group statistics;
    stores the block's loss sum (without T**2) to its ``partial_ptr`` slot.

    Per group g: ``ms_g``/``mt_g`` the student/teacher max, ``zs_g``/``zt_g``
    the sums of ``exp((x - m_g) / T)``, ``a_g`` = sum et (xt - xs) in base 2.
    The gradient of class i in group g is ``es_i cp_g - et_i cq_g``:
    dL/ds_i = T [w_bin p^g_i (P_g - Q_g) + w_g (p^g_i - q^g_i)] / n, with
    ``scale`` = T * loss_weight / n (0 for ignored pixels); coefficients of
    empty groups are 0 (no class picks them).

    Returns:
        tuple: ``(cp0, cp1, cp2, cq0, cq1, cq2)``.
    """
    # q^g_i log(q^g_i / p^g_i) summed over g = (sum et*(xt-xs))/Zt - log Zt
    # + log Zs; 0 log 0 = 0 where the teacher's probability is 0.
    row = w_g0 * _leaf_kl(a0, zs0, zt0)
    if NUM_GROUPS >= 2:
        row += w_g1 * _leaf_kl(a1, zs1, zt1)
    if NUM_GROUPS == 3:
        row += w_g2 * _leaf_kl(a2, zs2, zt2)
    big_p0 = tl.zeros(row.shape, tl.float32) + 1.
    big_q0 = big_p0
    big_p1 = big_p0
    big_q1 = big_p0
    big_p2 = big_p0
    big_q2 = big_p0
    if NUM_GROUPS >= 2:
        # Group log-masses: u_g = (m_g - M) / T + log Z_g, log P_g = u_g -
        # logsumexp(u); an empty group has Z_g = 0 and mass 0.
        top_s = tl.maximum(ms0, ms1)
        top_t = tl.maximum(mt0, mt1)
        if NUM_GROUPS == 3:
            top_s = tl.maximum(top_s, ms2)
            top_t = tl.maximum(top_t, mt2)
        us0 = (ms0 - top_s) * inv_t + tl.log(zs0)
        ut0 = (mt0 - top_t) * inv_t + tl.log(zt0)
        us1 = (ms1 - top_s) * inv_t + tl.log(zs1)
        ut1 = (mt1 - top_t) * inv_t + tl.log(zt1)
        sum_s = tl.exp(us0) + tl.exp(us1)
        sum_t = tl.exp(ut0) + tl.exp(ut1)
        if NUM_GROUPS == 3:
            us2 = (ms2 - top_s) * inv_t + tl.log(zs2)
            ut2 = (mt2 - top_t) * inv_t + tl.log(zt2)
            sum_s += tl.exp(us2)
            sum_t += tl.exp(ut2)
        lse_s = tl.log(sum_s)
        lse_t = tl.log(sum_t)
        lq0 = ut0 - lse_t
        lq1 = ut1 - lse_t
        lp0 = us0 - lse_s
        lp1 = us1 - lse_s
        big_q0 = tl.exp(lq0)
        big_q1 = tl.exp(lq1)
        big_p0 = tl.exp(lp0)
        big_p1 = tl.exp(lp1)
        binary = tl.where(big_q0 > 0., big_q0 * (lq0 - lp0), 0.) + \
            tl.where(big_q1 > 0., big_q1 * (lq1 - lp1), 0.)
        if NUM_GROUPS == 3:
            lq2 = ut2 - lse_t
            lp2 = us2 - lse_s
            big_q2 = tl.exp(lq2)
            big_p2 = tl.exp(lp2)
            binary += tl.where(big_q2 > 0., big_q2 * (lq2 - lp2), 0.)
        row += w_bin * binary
    scale = tl.where(valid, scale, 0.)
    cp0 = tl.where(zs0 > 0., scale * (w_bin * (big_p0 - big_q0) + w_g0)
                   / zs0, 0.)
    cq0 = tl.where(zt0 > 0., scale * w_g0 / zt0, 0.)
    cp1 = cp0
    cq1 = cq0
    cp2 = cp0
    cq2 = cq0
    if NUM_GROUPS >= 2:
        cp1 = tl.where(zs1 > 0., scale * (w_bin * (big_p1 - big_q1) + w_g1)
                       / zs1, 0.)
        cq1 = tl.where(zt1 > 0., scale * w_g1 / zt1, 0.)
    if NUM_GROUPS == 3:
        cp2 = tl.where(zs2 > 0., scale * (w_bin * (big_p2 - big_q2) + w_g2)
                       / zs2, 0.)
        cq2 = tl.where(zt2 > 0., scale * w_g2 / zt2, 0.)
    tl.store(partial_ptr + tl.program_id(1) * tl.num_programs(0) +
             tl.program_id(0), tl.sum(tl.where(valid, row, 0.), axis=0))
    return cp0, cp1, cp2, cq0, cq1, cq2


@triton.jit
def _pixel_labels(lab_ptr, pid_b, l_sb, l_sp, pix, pix_ok, ignore_index, C,
                  count_ptr, num_rows, HAS_LABELS: tl.constexpr,
                  COUNT_ON_DEVICE: tl.constexpr):
    """A block's labels and valid pixels, and 1 / the number of valid rows.

    Labels are clamped into [0, C): the DKD partition needs a class id for
    every valid pixel, as ``functional.dkd_loss`` (ignored ones are masked).
    """
    if HAS_LABELS:
        lab = tl.load(lab_ptr + pid_b * l_sb + pix * l_sp, mask=pix_ok,
                      other=ignore_index).to(tl.int32)
        valid = pix_ok & (lab != ignore_index)
        lab = tl.minimum(tl.maximum(lab, 0), C - 1)
    else:
        lab = tl.zeros(pix.shape, tl.int32)
        valid = pix_ok
    if COUNT_ON_DEVICE:
        count = tl.load(count_ptr)
    else:
        count = num_rows
    return lab, valid, 1. / tl.maximum(count, 1.)


# Strides stay specialised (a unit pixel stride gives 16-byte loads along
# pixels). Hiding it to get one pixel per thread compiled to ~1900 shuffles and
# 5 KB of spills per thread with Triton 3.6 and ran 25 ms at full resolution
# on an H200 (docs/benchmarks.md).
@triton.jit
def _partitioned_kl_kernel(
        s_ptr, t_ptr, lab_ptr, grad_ptr, partial_ptr, ticket_ptr, loss_ptr,
        count_ptr, C, P, s_sb, s_sc, s_sp, t_sb, t_sc, t_sp, g_sb, g_sc, g_sp,
        l_sb, l_sp, inv_t, grad_coef, loss_coef, w_bin, w_g0, w_g1, w_g2,
        ignore_index, num_rows, KIND: tl.constexpr, K: tl.constexpr,
        NUM_GROUPS: tl.constexpr, HAS_LABELS: tl.constexpr,
        COUNT_ON_DEVICE: tl.constexpr, WRITE_GRAD: tl.constexpr,
        BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_b = tl.program_id(1)
    pix = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    pix_ok = pix < P
    cls = tl.arange(0, BLOCK_C)[:, None]
    tile_ok = (cls < C) & pix_ok[None, :]
    # Padding classes read as -inf: they get zero probability and never
    # enter a top-k, so no class mask is needed below.
    s = tl.load(s_ptr + pid_b * s_sb + cls * s_sc + pix[None, :] * s_sp,
                mask=tile_ok, other=float('-inf')).to(tl.float32)
    t = tl.load(t_ptr + pid_b * t_sb + cls * t_sc + pix[None, :] * t_sp,
                mask=tile_ok, other=float('-inf')).to(tl.float32)
    lab, valid, inv_n = _pixel_labels(lab_ptr, pid_b, l_sb, l_sp, pix, pix_ok,
                                      ignore_index, C, count_ptr, num_rows,
                                      HAS_LABELS, COUNT_ON_DEVICE)

    # Group ids and the teacher's group maxima.
    if KIND == 0:
        gid = tl.zeros(t.shape, tl.int32)
        mt0 = tl.max(t, axis=0)
        mt1 = mt0
        mt2 = mt0
    elif KIND == 1:
        gid = tl.where(cls == lab[None, :], 0, 1)
        mt0 = _group_max(t, gid, 0)
        mt1 = _group_max(t, gid, 1)
        mt2 = mt0
    else:
        # K times: the largest remaining teacher logit, and among equal
        # values the lowest class index -- a stable descending sort's top-k.
        # Selected classes drop to -inf; real -inf logits (and padding) rank
        # as -FLT_MAX so they stay above the selected ones.
        key = tl.maximum(t, -3.4028234663852886e38)
        # Padding classes get group id 3, in no group: with k == C the last
        # group is empty and its -inf max would turn their zeros into NaN.
        gid = tl.where(cls < C, NUM_GROUPS - 1, 3)
        mt0 = tl.max(key, axis=0)
        mt1 = mt0
        for r in tl.static_range(K):
            top = tl.max(key, axis=0)
            first = tl.min(tl.where(key == top[None, :], cls, BLOCK_C),
                           axis=0)
            hit = cls == first[None, :]
            key = tl.where(hit, float('-inf'), key)
            if KIND == 3 and r > 0:
                gid = tl.where(hit, 1, gid)
                if r == 1:
                    mt1 = top
            else:
                gid = tl.where(hit, 0, gid)
        rest = tl.max(key, axis=0)
        if KIND == 2:
            mt1 = rest
        mt2 = rest
    ms0 = _group_max(s, gid, 0)
    ms1 = ms0
    ms2 = ms0
    if NUM_GROUPS >= 2:
        ms1 = _group_max(s, gid, 1)
    if NUM_GROUPS == 3:
        ms2 = _group_max(s, gid, 2)

    # Each group's log-softmax is taken relative to the group's own max, so
    # a spread of 1e4/T between groups costs no precision. Exponents are in
    # base 2 (log2(e) folded into 1/T): one MUFU.EX2 per exponential.
    inv_t2 = inv_t * 1.4426950408889634
    ms = _pick(gid, ms0[None, :], ms1[None, :], ms2[None, :], NUM_GROUPS)
    mt = _pick(gid, mt0[None, :], mt1[None, :], mt2[None, :], NUM_GROUPS)
    xs = (s - ms) * inv_t2
    xt = (t - mt) * inv_t2
    es = tl.exp2(xs)
    et = tl.exp2(xt)
    etd = tl.where(et > 0., et * (xt - xs), 0.)
    if NUM_GROUPS == 1:
        zs0 = tl.sum(es, axis=0)
        zt0 = tl.sum(et, axis=0)
        a0 = tl.sum(etd, axis=0)
    else:
        zs0 = _group_sum(es, gid, 0)
        zt0 = _group_sum(et, gid, 0)
        a0 = _group_sum(etd, gid, 0)
    zs1 = zs0
    zt1 = zt0
    a1 = a0
    if NUM_GROUPS >= 2:
        zs1 = _group_sum(es, gid, 1)
        zt1 = _group_sum(et, gid, 1)
        a1 = _group_sum(etd, gid, 1)
    zs2 = zs0
    zt2 = zt0
    a2 = a0
    if NUM_GROUPS == 3:
        zs2 = _group_sum(es, gid, 2)
        zt2 = _group_sum(et, gid, 2)
        a2 = _group_sum(etd, gid, 2)
    cp0, cp1, cp2, cq0, cq1, cq2 = _pixel_terms(
        partial_ptr, ms0, ms1, ms2, mt0, mt1, mt2, zs0, zs1, zs2, zt0, zt1,
        zt2, a0, a1, a2, valid, inv_t, grad_coef * inv_n, w_bin, w_g0, w_g1,
        w_g2, NUM_GROUPS)
    if WRITE_GRAD:
        grad = es * _pick(gid, cp0[None, :], cp1[None, :], cp2[None, :],
                          NUM_GROUPS) - \
            et * _pick(gid, cq0[None, :], cq1[None, :], cq2[None, :],
                       NUM_GROUPS)
        tl.store(grad_ptr + pid_b * g_sb + cls * g_sc + pix[None, :] * g_sp,
                 grad.to(grad_ptr.dtype.element_ty), mask=tile_ok)

    _finish_sum(partial_ptr, ticket_ptr, loss_ptr, loss_coef * inv_n)


@triton.jit
def _topk_threshold(ts, C: tl.constexpr, K: tl.constexpr):
    """Per pixel, the teacher's k-th largest logit and how to break ties.

    ``ts``: the C teacher logit vectors. The k largest, with repeats, are
    kept sorted in k registers (each slot takes the larger of itself and
    what the slot above gives up); ``thr`` is the k-th. The top-k classes
    are those above ``thr`` and the first ``need`` (in class order) equal to
    it, ``need`` being how many of the k largest equal ``thr`` -- a stable
    descending sort's top-k. ``first`` is the lowest class index holding
    the max. -inf logits rank as -FLT_MAX.

    Returns:
        tuple: ``(thr, need, first)``.
    """
    top = ()
    for j in tl.static_range(K):
        top = top + (tl.zeros(ts[0].shape, tl.float32) + float('-inf'), )
    first = tl.zeros(ts[0].shape, tl.int32)
    for c in tl.static_range(C):
        key = tl.maximum(ts[c], -3.4028234663852886e38)
        first = tl.where(key > top[0], c, first)
        new = (tl.maximum(top[0], key), )
        for j in tl.static_range(1, K):
            new = new + (tl.maximum(top[j], tl.minimum(top[j - 1], key)), )
        top = new
    thr = top[K - 1]
    need = tl.zeros(ts[0].shape, tl.int32)
    for j in tl.static_range(K):
        need += (top[j] == thr).to(tl.int32)
    return thr, need, first


@triton.jit
def _group_of(c, top, lab, first, KIND: tl.constexpr):
    """Class c's group id at each pixel (``top``: c is in the top-k)."""
    if KIND == 0:
        gid = tl.zeros(lab.shape, tl.int32)
    elif KIND == 1:
        gid = tl.where(lab == c, 0, 1)
    elif KIND == 2:
        gid = tl.where(top, 0, 1)
    else:
        gid = tl.where(first == c, 0, tl.where(top, 1, 2))
    return gid


@triton.jit
def _class_loop_kernel(
        s_ptr, t_ptr, lab_ptr, grad_ptr, partial_ptr, ticket_ptr, loss_ptr,
        count_ptr, C: tl.constexpr, P, s_sb, s_sc, s_sp, t_sb, t_sc, t_sp,
        g_sb, g_sc, g_sp, l_sb, l_sp, inv_t, grad_coef, loss_coef, w_bin,
        w_g0, w_g1, w_g2, ignore_index, num_rows, KIND: tl.constexpr,
        K: tl.constexpr, NUM_GROUPS: tl.constexpr, HAS_LABELS: tl.constexpr,
        COUNT_ON_DEVICE: tl.constexpr, WRITE_GRAD: tl.constexpr,
        BLOCK_P: tl.constexpr):
    """The same loss as ``_partitioned_kl_kernel`` for maps (pixel stride 1):
    each thread owns whole pixels and walks the classes, so nothing is
    padded to a power of two and no reduction crosses threads. The loops
    over classes are unrolled (C is a compile-time constant) and the
    per-class values live in tuples of registers: logits are read once and
    each exponential is computed once.
    """
    pid_p = tl.program_id(0)
    pid_b = tl.program_id(1)
    pix = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    pix_ok = pix < P
    lab, valid, inv_n = _pixel_labels(lab_ptr, pid_b, l_sb, l_sp, pix, pix_ok,
                                      ignore_index, C, count_ptr, num_rows,
                                      HAS_LABELS, COUNT_ON_DEVICE)
    ss = ()
    ts = ()
    for c in tl.static_range(C):
        ss = ss + (tl.load(s_ptr + pid_b * s_sb + c * s_sc + pix * s_sp,
                           mask=pix_ok, other=0.).to(tl.float32), )
        ts = ts + (tl.load(t_ptr + pid_b * t_sb + c * t_sc + pix * t_sp,
                           mask=pix_ok, other=0.).to(tl.float32), )
    zero = tl.zeros([BLOCK_P], tl.float32)
    thr = zero
    need = tl.zeros([BLOCK_P], tl.int32)
    first = need
    if KIND >= 2:
        thr, need, first = _topk_threshold(ts, C, K)

    # Group ids (kept per class) and group maxima.
    ms0 = zero + float('-inf')
    ms1 = ms0
    ms2 = ms0
    mt0 = ms0
    mt1 = ms0
    mt2 = ms0
    tied = need * 0
    gids = ()
    for c in tl.static_range(C):
        top = pix_ok
        if KIND >= 2:
            key = tl.maximum(ts[c], -3.4028234663852886e38)
            equal = key == thr
            top = (key > thr) | (equal & (tied < need))
            tied += equal.to(tl.int32)
        gid = _group_of(c, top, lab, first, KIND)
        gids = gids + (gid, )
        ms0 = tl.maximum(ms0, tl.where(gid == 0, ss[c], float('-inf')))
        mt0 = tl.maximum(mt0, tl.where(gid == 0, ts[c], float('-inf')))
        if NUM_GROUPS >= 2:
            ms1 = tl.maximum(ms1, tl.where(gid == 1, ss[c], float('-inf')))
            mt1 = tl.maximum(mt1, tl.where(gid == 1, ts[c], float('-inf')))
        if NUM_GROUPS == 3:
            ms2 = tl.maximum(ms2, tl.where(gid == 2, ss[c], float('-inf')))
            mt2 = tl.maximum(mt2, tl.where(gid == 2, ts[c], float('-inf')))

    # Each group's log-softmax relative to the group's own max, exponents in
    # base 2 (log2(e) folded into 1/T), as in _partitioned_kl_kernel. A
    # group's sums are multiply-adds by its 0/1 indicator (es and et are
    # finite); etd keeps a select, as et * (xt - xs) may be 0 * inf.
    inv_t2 = inv_t * 1.4426950408889634
    zs0 = zero
    zs1 = zero
    zs2 = zero
    zt0 = zero
    zt1 = zero
    zt2 = zero
    a0 = zero
    a1 = zero
    a2 = zero
    es_all = ()
    et_all = ()
    for c in tl.static_range(C):
        gid = gids[c]
        xs = (ss[c] - _pick(gid, ms0, ms1, ms2, NUM_GROUPS)) * inv_t2
        xt = (ts[c] - _pick(gid, mt0, mt1, mt2, NUM_GROUPS)) * inv_t2
        es = tl.exp2(xs)
        et = tl.exp2(xt)
        etd = tl.where(et > 0., et * (xt - xs), 0.)
        es_all = es_all + (es, )
        et_all = et_all + (et, )
        if NUM_GROUPS == 1:
            zs0 += es
            zt0 += et
            a0 += etd
        else:
            in0 = tl.where(gid == 0, 1., 0.)
            in1 = tl.where(gid == 1, 1., 0.)
            zs0 += in0 * es
            zt0 += in0 * et
            a0 += tl.where(gid == 0, etd, 0.)
            zs1 += in1 * es
            zt1 += in1 * et
            a1 += tl.where(gid == 1, etd, 0.)
            if NUM_GROUPS == 3:
                in2 = tl.where(gid == 2, 1., 0.)
                zs2 += in2 * es
                zt2 += in2 * et
                a2 += tl.where(gid == 2, etd, 0.)
    cp0, cp1, cp2, cq0, cq1, cq2 = _pixel_terms(
        partial_ptr, ms0, ms1, ms2, mt0, mt1, mt2, zs0, zs1, zs2, zt0, zt1,
        zt2, a0, a1, a2, valid, inv_t, grad_coef * inv_n, w_bin, w_g0, w_g1,
        w_g2, NUM_GROUPS)

    if WRITE_GRAD:
        for c in tl.static_range(C):
            gid = gids[c]
            grad = es_all[c] * _pick(gid, cp0, cp1, cp2, NUM_GROUPS) - \
                et_all[c] * _pick(gid, cq0, cq1, cq2, NUM_GROUPS)
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
def _count_valid_kernel(lab_ptr, P, l_sb, l_sp, ignore_index, partial_ptr,
                        ticket_ptr, count_ptr, BLOCK: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_b = tl.program_id(1)
    pix = pid_p * BLOCK + tl.arange(0, BLOCK)
    lab = tl.load(lab_ptr + pid_b * l_sb + pix * l_sp, mask=pix < P,
                  other=ignore_index)
    tl.store(partial_ptr + pid_b * tl.num_programs(0) + pid_p,
             tl.sum((lab != ignore_index).to(tl.float32), axis=0))
    _finish_sum(partial_ptr, ticket_ptr, count_ptr, 1.)


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


KERNELS = ('tile', 'class_loop')


# The class loop is unrolled at compile time (one kernel per C and k) and
# holds every class's values and the k largest teacher logits in registers:
# up to 32 classes and k = 8 (beyond, registers spill); else the tile
# kernel.
MAX_LOOP_CLASSES = 32
MAX_LOOP_K = 8


def pick_kernel(s3: torch.Tensor, t3: torch.Tensor, grad3, k: int) -> str:
    """``'class_loop'`` for maps (unit pixel stride everywhere) within its
    limits (``MAX_LOOP_CLASSES``, ``MAX_LOOP_K``), else ``'tile'``: rows
    (``(N, C)``, whose classes are the contiguous axis), many-class maps."""
    tensors = [s3, t3] + ([grad3] if grad3 is not None else [])
    if all(x.stride(2) == 1 for x in tensors) and s3.shape[2] > 1 and \
            s3.shape[1] <= MAX_LOOP_CLASSES and k <= MAX_LOOP_K:
        return 'class_loop'
    return 'tile'


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


def launch(s3: torch.Tensor, t3: torch.Tensor, labels2, grad3, kind: int,
           num_groups: int, k: int, weights, temperature: float, scale: float,
           ignore_index: int, mean: bool, config=None) -> torch.Tensor:
    """Run the fused kernel on ``(B, C, P)`` views; returns the loss (0-dim).

    Args:
        s3, t3: student / teacher logits viewed as ``(B, C, P)``.
        labels2: ``(B, P)`` integer labels or None.
        grad3: ``(B, C, P)`` output for ``dLoss/ds`` or None.
        kind, num_groups, k: partition (``fused.KIND_*``), its number of
            groups and the top-k size.
        weights: ``(w_bin, w_g0, w_g1, w_g2)``.
        scale: multiplier of the loss (loss_weight).
        mean: divide by the number of valid rows (else: sum).
        config: override of the kernel and its block: ``(kernel, )``,
            ``(kernel, BLOCK_P, num_warps)`` or ``(BLOCK_P, num_warps)``;
            ``kernel`` one of :data:`KERNELS` (default:
            :func:`pick_kernel`).
    """
    B, C, P = s3.shape
    device = s3.device
    config = tuple(config or ())
    forced = bool(config) and isinstance(config[0], str)
    if forced:
        kernel, sizes = config[0], config[1:]
    else:
        kernel, sizes = pick_kernel(s3, t3, grad3, k), config
        if kernel == 'class_loop' and _CLASS_LOOP_FAILED:
            kernel, sizes = 'tile', ()
    if kernel not in KERNELS:
        raise ValueError(f'kernel must be one of {KERNELS}, got {kernel!r}')
    if kernel == 'class_loop' and (C > MAX_LOOP_CLASSES or k > MAX_LOOP_K):
        raise ValueError(f'the class_loop kernel takes up to '
                         f'{MAX_LOOP_CLASSES} classes and k <= {MAX_LOOP_K}, '
                         f'got C={C}, k={k}')
    loss = torch.empty((), dtype=torch.float32, device=device)
    ticket = _ticket(device)
    count = loss  # placeholder pointer when the count is not on device
    has_labels = labels2 is not None
    if has_labels and mean:
        count = torch.empty((), dtype=torch.float32, device=device)
        cgrid = (_cdiv(P, 1024), B)
        cpart = torch.empty(cgrid[0] * cgrid[1], dtype=torch.float32,
                            device=device)
        _count_valid_kernel[cgrid](labels2, P, labels2.stride(0),
                                   labels2.stride(1), ignore_index, cpart,
                                   ticket, count, BLOCK=1024)
    w_bin, w_g0, w_g1, w_g2 = (float(w) for w in weights)
    g = grad3 if grad3 is not None else s3
    lab = labels2 if has_labels else s3
    # The kernels' arguments around partial_ptr (which depends on the grid).
    head = (s3, t3, lab, g)
    tail = (ticket, loss, count, C, P,
            s3.stride(0), s3.stride(1), s3.stride(2),
            t3.stride(0), t3.stride(1), t3.stride(2),
            g.stride(0), g.stride(1), g.stride(2),
            labels2.stride(0) if has_labels else 0,
            labels2.stride(1) if has_labels else 0,
            1. / temperature, temperature * scale, temperature**2 * scale,
            w_bin, w_g0, w_g1, w_g2, ignore_index,
            float(B * P) if mean else 1.)
    meta = dict(KIND=kind, K=k, NUM_GROUPS=num_groups, HAS_LABELS=has_labels,
                COUNT_ON_DEVICE=has_labels and mean,
                WRITE_GRAD=grad3 is not None)
    try:
        _launch_main(kernel, sizes, B, C, P, head, tail, meta)
    except Exception as err:  # noqa: BLE001 - whatever the compiler raised
        if forced or kernel != 'class_loop':
            raise
        # An older Triton (3.1 and 3.2 reject the class loop's tuples of
        # tensors; 3.6 and 3.8 compile them) or another compiler failure:
        # nothing ran; the tile kernel computes the same loss, from now on
        # in this process.
        _CLASS_LOOP_FAILED.append(err)
        warnings.warn('the class_loop Triton kernel failed with triton '
                      f'{triton.__version__} ({type(err).__name__}: {err}); '
                      'using the tile kernel from now on')
        _launch_main('tile', (), B, C, P, head, tail, meta)
    return loss


# The error that made the class-loop kernel unusable here, if any.
_CLASS_LOOP_FAILED = []


def _launch_main(kernel: str, sizes: tuple, B: int, C: int, P: int,
                 head: tuple, tail: tuple, meta: dict):
    """Launch one main kernel (a partial sum per program, then the total)
    with ``head + (partials, ) + tail`` as its arguments."""
    block_p, num_warps = sizes or default_config(C, kernel)
    grid = (_cdiv(P, block_p), B)
    partials = torch.empty(grid[0] * grid[1], dtype=torch.float32,
                           device=head[0].device)
    args = head + (partials, ) + tail
    if kernel == 'class_loop':
        _class_loop_kernel[grid](*args, BLOCK_P=block_p, num_warps=num_warps,
                                 **meta)
    else:
        _partitioned_kl_kernel[grid](*args, BLOCK_C=next_power_of_2(C),
                                     BLOCK_P=block_p, num_warps=num_warps,
                                     **meta)


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
