"""The loss family on the plain path against an independent float64
computation (values, gradients, the chain-rule identity, ties), and the call
contract (ignore pixels, resizing, dtypes, errors)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

import gdkd_seg  # noqa: F401
from gdkd_seg.losses import functional
from gdkd_seg.losses import partition
from gdkd_seg.losses import DKDLoss, GDKD3Loss, GDKDLoss, KDLoss
from reference import (cut_groups, cut_row_grad, cut_row_loss, dkd_row,
                       gdkd_row, kd_row, label_groups, partition_row_grad,
                       partition_row_loss, softmax)


def gdkd_spec(k, T):
    return partition.gdkd(k=k, w0=1.0, w1=1.0, w2=2.0, temperature=T)


def rows_of(x):
    return x.detach().permute(0, 2, 3, 1).reshape(
        -1, x.shape[1]).double().numpy()


def random_case(seed, b=2, c=7, h=5, w=4, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, c, h, w, generator=g) * scale
    t = torch.randn(b, c, h, w, generator=g) * scale
    labels = torch.randint(0, c, (b, h, w), generator=g)
    labels[torch.rand(b, h, w, generator=g) < 0.2] = 255
    return s, t, labels


def reference_mean(row_fn, s, t, labels, **kw):
    sr, tr = rows_of(s), rows_of(t)
    lr = labels.reshape(-1).numpy()
    vals = [row_fn(sr[i], tr[i], lr[i], **kw) for i in range(len(sr))
            if lr[i] != 255]
    return float(np.mean(vals)) if vals else 0.0


# Each member of the family and the partition that independently defines
# it: teacher-rank cut points or 'label', the group weight, one weight per
# leaf, T and the class count.
FAMILY = {
    'kd': (lambda: KDLoss(temperature=2.0), (), 0.0, [1.0], 2.0, 7),
    'dkd': (lambda: DKDLoss(alpha=1.5, beta=4.0, temperature=1.5), 'label',
            1.5, [0.0, 4.0], 1.5, 11),
    'gdkd': (lambda: GDKDLoss(k=3, w0=1.0, w1=2.0, w2=3.0, temperature=4.0),
             (3, ), 1.0, [2.0, 3.0], 4.0, 19),
    'gdkd-k1': (lambda: GDKDLoss(k=1, w0=0.5, w1=7.0, w2=2.0,
                                 temperature=0.5), (1, ), 0.5, [7.0, 2.0],
                0.5, 19),
    'gdkd-k=C': (lambda: GDKDLoss(k=5, temperature=2.0), (5, ), 1.0,
                 [1.0, 2.0], 2.0, 5),  # the rest group is empty
    # GDKD3's top-1 leaf holds one class: its weight is irrelevant.
    'gdkd3': (lambda: GDKD3Loss(k=4, w0=0.5, w1=1.0, w2=2.0,
                                temperature=1.0), (1, 4), 0.5,
              [0.0, 1.0, 2.0], 1.0, 19),
    'three-cut': (lambda: GDKDLoss(k=(1, 3, 6), w0=1.0,
                                   leaf_weights=(0.5, 1.0, 2.0, 3.0),
                                   temperature=2.0), (1, 3, 6), 1.0,
                  [0.5, 1.0, 2.0, 3.0], 2.0, 19),
    # Cut points deeper than 32 take the stable-sort ranking.
    'deep-cut': (lambda: GDKDLoss(k=(2, 36), w0=2.0, w1=1.0, w2=4.0),
                 (2, 36), 2.0, [1.0, 1.0, 4.0], 1.0, 40),
}


def reference_groups(cuts, t_row, label):
    if cuts == 'label':
        return label_groups(len(t_row), label)
    return cut_groups(t_row, cuts)


@pytest.mark.parametrize('name', FAMILY)
def test_family_value_and_gradient_match_float64_reference(name):
    build, cuts, w_group, leaves, T, c = FAMILY[name]
    s, t, labels = random_case(sorted(FAMILY).index(name), c=c)
    s.requires_grad_(True)
    loss_fn = build()
    loss_fn.use_fused, loss_fn.loss_weight = False, 0.7
    loss = loss_fn(s, t, labels)
    loss.backward()

    sr, tr = rows_of(s), rows_of(t)
    lr = labels.reshape(-1).numpy()
    valid = np.flatnonzero(lr != 255)
    groups = {i: reference_groups(cuts, tr[i], lr[i]) for i in valid}
    want = 0.7 * np.mean([
        partition_row_loss(sr[i], tr[i], groups[i], w_group, leaves, T)
        for i in valid])
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(want, rel=2e-5, abs=1e-6)
    want_grad = np.zeros_like(sr)
    for i in valid:
        want_grad[i] = partition_row_grad(sr[i], tr[i], groups[i], w_group,
                                          leaves, T) * 0.7 / len(valid)
    np.testing.assert_allclose(rows_of(s.grad), want_grad, rtol=1e-4,
                               atol=1e-7)


@pytest.mark.parametrize('name', ['kd', 'dkd', 'gdkd', 'gdkd3', 'three-cut'])
def test_float64_autograd_gradient_is_the_closed_form(name):
    """In float64 the plain path's autograd gradient equals the closed form
    to 1e-9: the check the fused path's closed-form gradient relies on."""
    build, cuts, w_group, leaves, T, c = FAMILY[name]
    s, t, labels = random_case(30, b=1, c=c, h=3, w=3)
    s = s.double().requires_grad_(True)
    t = t.double()
    rows = functional.plain_loss(s, t, build().spec, labels.reshape(-1), 255,
                                 'none')
    sr, tr, lr = rows_of(s), rows_of(t), labels.reshape(-1).numpy()
    for i in np.flatnonzero(lr != 255):
        grad, = torch.autograd.grad(rows[i], s, retain_graph=True)
        groups = reference_groups(cuts, tr[i], lr[i])
        assert rows[i].item() == pytest.approx(
            partition_row_loss(sr[i], tr[i], groups, w_group, leaves, T),
            rel=1e-10)
        want = np.zeros_like(sr)
        want[i] = partition_row_grad(sr[i], tr[i], groups, w_group, leaves,
                                     T)
        np.testing.assert_allclose(rows_of(grad), want, rtol=1e-9,
                                   atol=1e-12)


def test_gdkd3_is_gdkd_with_cuts_1_k():
    for k in (2, 4, 7):
        three = GDKD3Loss(k=k, w0=0.5, w1=2.0, w2=3.0, temperature=1.5)
        cut = GDKDLoss(k=(1, k), w0=0.5, w1=2.0, w2=3.0, temperature=1.5)
        assert three.spec == cut.spec
    s, t, labels = random_case(31, c=9)
    results = []
    for loss_fn in (GDKD3Loss(k=4, use_fused=False),
                    GDKDLoss(k=(1, 4), use_fused=False)):
        x = s.clone().requires_grad_(True)
        loss = loss_fn(x, t, labels)
        results.append((loss, torch.autograd.grad(loss, x)[0]))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize('cuts,c', [((1, 3, 6), 19), ((3, ), 7),
                                    ((1, 35), 40)])
def test_chain_rule_identity_for_the_hierarchy(cuts, c):
    """KL(q||p) = KL(Q||P) + sum_g Q_g KL(q^g||p^g) over the leaves of any
    cut hierarchy: per-row leaf weights Q_g turn it into KD."""
    g = torch.Generator().manual_seed(19)
    s = torch.randn(6, c, generator=g, dtype=torch.float64) * 3
    t = torch.randn(6, c, generator=g, dtype=torch.float64) * 3
    spec = partition.gdkd(k=cuts, w0=1.0, w1=1.0, w2=1.0, temperature=2.0)
    groups = functional.group_index(spec, t)
    q = torch.softmax(t / 2.0, 1)
    mass = torch.stack([(q * (groups == i)).sum(1)
                        for i in range(spec.num_groups)], 1)
    split = functional.partitioned_kl(s, t, groups, 1.0, mass, 2.0)
    whole = functional.row_losses(partition.kd(temperature=2.0), s, t)
    torch.testing.assert_close(split, whole, rtol=1e-12, atol=1e-12)
    for i in range(6):  # and the reference satisfies it too
        a, b = s[i].numpy(), t[i].numpy()
        assert cut_row_loss(a, b, cuts, 1.0, list(mass[i].numpy()),
                            2.0) == pytest.approx(kd_row(a, b, 2.0),
                                                  rel=1e-12)


def test_ties_at_every_cut_go_to_the_lowest_class_index():
    # Each cut of (1, 3, 6) falls inside a tie: 9 at classes 1 and 5 (ranks
    # 0, 1), 7 at classes 3 and 7 (ranks 2, 3), 4 at classes 0 and 4 (ranks
    # 5, 6).
    t = torch.tensor([[4.0, 9.0, 0.0, 7.0, 4.0, 9.0, 5.0, 7.0, 1.0, 0.0,
                       2.0]])
    np.testing.assert_array_equal(cut_groups(t[0].numpy(), (1, 3, 6)),
                                  [2, 0, 3, 1, 3, 1, 2, 2, 3, 3, 3])
    for cuts in ((1, ), (3, ), (6, ), (1, 3, 6), (2, 7, 9)):
        spec = partition.gdkd(k=cuts, w0=1.0, w1=1.0, w2=1.0,
                              temperature=1.0)
        want = cut_groups(t[0].numpy(), cuts)
        assert functional.group_index(spec, t)[0].tolist() == want.tolist()
    # Many random ties, at shallow cuts and deep ones.
    g = torch.Generator().manual_seed(3)
    for c, cuts in ((19, (1, 3, 6)), (40, (1, 3, 33))):
        t = torch.randint(0, 4, (64, c), generator=g).float()
        spec = partition.gdkd(k=cuts, w0=1.0, w1=1.0, w2=1.0,
                              temperature=1.0)
        got = functional.group_index(spec, t).numpy()
        want = np.stack([cut_groups(row, cuts) for row in t.numpy()])
        np.testing.assert_array_equal(got, want)
        # The same rows as a (B, C, P) map, and one per-row cut each.
        maps = t.t().reshape(1, c, 64)
        got = functional.group_index(spec, maps)[0].t().numpy()
        np.testing.assert_array_equal(got, want)
        row_k = torch.randint(1, c + 1, (64, ), generator=g)
        adaptive = partition.gdkd(k=partition.AdaptiveCut(0.5, None),
                                  w0=1.0, w1=1.0, w2=1.0, temperature=1.0)
        want = np.stack([cut_groups(row, (int(k), ))
                         for row, k in zip(t.numpy(), row_k)])
        got = functional.group_index(adaptive, t, row_k=row_k)
        np.testing.assert_array_equal(got.numpy(), want)
        got = functional.group_index(adaptive, maps, row_k=row_k.view(1, 64))
        np.testing.assert_array_equal(got[0].t().numpy(), want)


def test_loss_with_tied_teacher_logits_matches_reference():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(2, 19, 3, 3, generator=g) * 2
    t = torch.randint(0, 3, (2, 19, 3, 3), generator=g).float()
    loss = GDKDLoss(k=(1, 3, 6), use_fused=False)(s, t)
    want = np.mean([cut_row_loss(a, b, (1, 3, 6), 1.0, [1, 1, 1, 2], 1.0)
                    for a, b in zip(rows_of(s), rows_of(t))])
    assert loss.item() == pytest.approx(want, rel=2e-5)


def test_k1_equals_dkd_partitioned_by_teacher_top1():
    s, t, labels = random_case(7, c=19)
    top1 = t.argmax(1)
    gdkd = GDKDLoss(k=1, w0=1.5, w1=123.0, w2=3.0, temperature=2.0,
                    use_fused=False)(s, t, labels)
    # DKD with the teacher's top-1 as the "target"; w1 has no effect at k=1.
    s_rows, t_rows = functional.flatten_logits(s), functional.flatten_logits(t)
    dkd_rows = functional.row_losses(
        partition.dkd(alpha=1.5, beta=3.0, temperature=2.0), s_rows, t_rows,
        top1.reshape(-1))
    valid = labels.reshape(-1) != 255
    assert gdkd.item() == pytest.approx(dkd_rows[valid].mean().item(),
                                        rel=1e-6)


@pytest.mark.parametrize('loss', [
    GDKDLoss(k=3), GDKD3Loss(k=4, w1=2.0), KDLoss(temperature=2.0),
    DKDLoss(beta=2.0), GDKDLoss(k=(1, 3, 6))
])
def test_gradient_rows_sum_to_zero_and_teacher_gets_none(loss):
    loss.use_fused = False
    s, t, labels = random_case(9, c=12)
    s.requires_grad_(True)
    t.requires_grad_(True)
    loss(s, t, labels).backward()
    assert t.grad is None
    row_sums = s.grad.sum(1)
    assert s.grad.abs().max() > 0
    torch.testing.assert_close(row_sums, torch.zeros_like(row_sums),
                               atol=1e-6 * s.grad.abs().max().item(), rtol=0)


def test_gradcheck_float64():
    s, t, labels = random_case(10, b=1, c=6, h=3, w=3)
    s = s.double().requires_grad_(True)
    t = t.double()
    for loss in (GDKDLoss(k=2, temperature=1.7, w2=3.0),
                 GDKD3Loss(k=3, w1=0.5), DKDLoss(), KDLoss(temperature=3.0),
                 GDKDLoss(k='adaptive', adaptive_mass=0.8)):
        assert torch.autograd.gradcheck(lambda x: loss(x, t, labels), (s, ))


def test_extreme_spread_is_exact_where_official_code_fails():
    """Rest-group logits sit 1e4/T below the top group. Leaf KLs are shift
    invariant, so the exact loss is the unshifted leaf KLs plus a binary KL
    that is 0 to float precision; the -1000-mask trick returns a KL over all
    classes here and masses underflow to 0 (NaN in the official code)."""
    g = torch.Generator().manual_seed(11)
    c, k = 8, 3
    for T in (0.1, 1.0, 10.0):
        s = torch.randn(6, c, generator=g)
        t = torch.randn(6, c, generator=g)
        t[:, :k] += 5.0  # the teacher's top-3 are the first three classes
        shift = torch.zeros(c)
        shift[k:] = -1e4  # a spread of 1e4 / T in logits / T
        s, t = s + shift, t + shift
        loss = functional.row_losses(gdkd_spec(k, T), s, t)
        assert torch.isfinite(loss).all()
        groups = np.array([0] * k + [1] * (c - k))
        for i in range(6):
            # the float32 inputs, un-shifted exactly in float64
            sr = (s[i].double() - shift.double()).numpy()
            tr = (t[i].double() - shift.double()).numpy()
            leaf = 0.0
            for gid, w in ((0, 1.0), (1, 2.0)):
                m = groups == gid
                q, p = softmax(tr[m] / T), softmax(sr[m] / T)
                leaf += w * np.sum(q * np.log(q / p))
            assert loss[i].item() == pytest.approx(T * T * leaf, rel=1e-4)


def test_identical_logits_give_zero_loss_for_any_spread():
    x = torch.tensor([[1e4, 0.0, -1e4, 5.0], [-3e4, 3e4, 0.0, 1.0]])
    for T in (0.1, 1.0, 10.0):
        for spec in (gdkd_spec(2, T), gdkd_spec((1, 2, 3), T),
                     partition.gdkd3(k=3, w0=1, w1=1, w2=2, temperature=T),
                     partition.kd(temperature=T)):
            out = functional.row_losses(spec, x, x)
            assert torch.all(out.abs() < 1e-6), out


def test_underflowing_group_mass_keeps_finite_gradient():
    s = torch.tensor([[200.0, 0.0, -1.0, -2.0]], requires_grad=True)
    t = torch.tensor([[0.0, 150.0, -2.0, -1.0]])
    loss = GDKDLoss(k=1, use_fused=False)(s, t)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
    want = gdkd_row(s.detach()[0].double().numpy(), t[0].double().numpy(), 1,
                    1.0, 1.0, 2.0, 1.0)
    assert loss.item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_precision_inputs_accumulate_in_float32(dtype):
    s, t, labels = random_case(12, c=19, scale=8.0)
    sh = s.to(dtype).requires_grad_(True)
    th = t.to(dtype)
    loss_fn = GDKDLoss(use_fused=False)
    loss = loss_fn(sh, th, labels)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    ref = loss_fn(sh.detach().float(), th.float(), labels)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    loss.backward()
    assert sh.grad.dtype == dtype and torch.isfinite(sh.grad).all()


def test_full_resolution_labels_are_resized_by_nearest_neighbour():
    s, t, _ = random_case(13, b=2, c=5, h=4, w=6)
    full = torch.randint(0, 5, (2, 32, 48))
    full[:, :8] = 255
    small = F.interpolate(full[:, None].float(), size=(4, 6),
                           mode='nearest')[:, 0].long()
    loss = GDKDLoss(k=2, use_fused=False)
    assert loss(s, t, full).item() == pytest.approx(
        loss(s, t, small).item(), rel=1e-7)
    assert loss(s, t, full[:, None]).item() == pytest.approx(
        loss(s, t, small).item(), rel=1e-7)
    assert (small == 255).any() and (small != 255).any()


def test_ignored_pixels_contribute_nothing():
    s, t, labels = random_case(14, c=9)
    loss = GDKDLoss(k=2, use_fused=False)
    base = loss(s, t, labels)
    s2 = s.clone()
    s2.permute(0, 2, 3, 1)[labels == 255] = 1e3  # change only ignored pixels
    assert loss(s2, t, labels).item() == pytest.approx(base.item(), rel=1e-7)
    ignore_all = torch.full_like(labels, 255)
    s.requires_grad_(True)
    zero = loss(s, t, ignore_all)
    zero.backward()
    assert zero.item() == 0.0
    assert torch.all(s.grad == 0)


def test_custom_ignore_index_and_no_labels():
    s, t, labels = random_case(15, c=9)
    labels[labels == 255] = -1
    a = GDKDLoss(ignore_index=-1, use_fused=False)(s, t, labels)
    b = GDKDLoss(use_fused=False)(s, t,
                                  labels.masked_fill(labels == -1, 255))
    assert a.item() == pytest.approx(b.item(), rel=1e-7)
    every = GDKDLoss(use_fused=False)(s, t)
    want = np.mean([
        gdkd_row(a_, b_, 3, 1.0, 1.0, 2.0, 1.0)
        for a_, b_ in zip(rows_of(s), rows_of(t))
    ])
    assert every.item() == pytest.approx(want, rel=2e-5)


def test_teacher_map_is_resized_to_student_grid_bilinearly():
    s, _, labels = random_case(16, c=7, h=4, w=4)
    t_big = torch.randn(2, 7, 8, 8)
    t_small = F.interpolate(t_big, size=(4, 4), mode='bilinear',
                             align_corners=False)
    loss = GDKDLoss(use_fused=False)
    assert loss(s, t_big, labels).item() == pytest.approx(
        loss(s, t_small, labels).item(), rel=1e-6)


def test_row_logits_with_row_labels():
    g = torch.Generator().manual_seed(17)
    s, t = torch.randn(10, 100, generator=g), torch.randn(10, 100, generator=g)
    y = torch.randint(0, 100, (10, ), generator=g)
    got = DKDLoss(beta=8.0, temperature=4.0, use_fused=False)(s, t, y)
    want = np.mean([
        dkd_row(s[i].double().numpy(), t[i].double().numpy(), int(y[i]), 1.0,
                8.0, 4.0) for i in range(10)
    ])
    assert got.item() == pytest.approx(want, rel=2e-5)


def test_reduction_none_and_sum():
    s, t, labels = random_case(18, c=6)
    rows = GDKDLoss(reduction='none')(s, t, labels)
    valid = labels.reshape(-1) != 255
    assert rows.shape == (labels.numel(), ) and torch.all(rows[~valid] == 0)
    total = GDKDLoss(reduction='sum', use_fused=False)(s, t, labels)
    assert total.item() == pytest.approx(rows.sum().item(), rel=1e-6)


def test_partitioned_kl_of_any_partition_matches_reference():
    g = torch.Generator().manual_seed(19)
    s, t = torch.randn(5, 9, generator=g), torch.randn(5, 9, generator=g)
    groups = torch.randint(0, 3, (5, 9), generator=g)
    groups[0] = 1  # groups 0 and 2 empty in this row
    got = functional.partitioned_kl(s.double(), t.double(), groups, 0.3,
                                    [1.0, 2.0, 0.5])
    for i in range(5):
        want = partition_row_loss(s[i].double().numpy(),
                                  t[i].double().numpy(), groups[i].numpy(),
                                  0.3, [1.0, 2.0, 0.5], 1.0)
        assert got[i].item() == pytest.approx(want, rel=1e-10)
    grad = cut_row_grad(s[1].double().numpy(), t[1].double().numpy(), (2, ),
                        1.0, [1.0, 2.0], 1.0)
    x = s[1:2].double().requires_grad_(True)
    functional.row_losses(gdkd_spec(2, 1.0), x,
                          t[1:2].double()).sum().backward()
    np.testing.assert_allclose(x.grad[0].numpy(), grad, rtol=1e-9)


def test_registry_builds_losses_with_mmseg_scope():
    loss = MODELS.build(dict(type='GDKDLoss', k=2, loss_weight=0.5))
    assert isinstance(loss, GDKDLoss) and loss.loss_name == 'loss_gdkd'
    three = MODELS.build(dict(type='GDKDLoss', k=[1, 3, 6]))
    assert three.spec.cuts == (1, 3, 6) and three.spec.num_groups == 4
    for name, cls in (('KDLoss', KDLoss), ('DKDLoss', DKDLoss),
                      ('GDKD3Loss', GDKD3Loss)):
        assert isinstance(MODELS.build(dict(type=name)), cls)


def test_errors_name_the_problem():
    s, t, labels = random_case(20, c=7)
    with pytest.raises(ValueError, match='student logits have 7 classes, '
                       'teacher logits have 6'):
        GDKDLoss()(s, t[:, :6], labels)
    with pytest.raises(ValueError, match='call it with gt_seg'):
        DKDLoss()(s, t)
    with pytest.raises(ValueError, match=r'k must be in \[1, 7\]'):
        GDKDLoss(k=8, use_fused=False)(s, t, labels)
    with pytest.raises(ValueError, match=r'k must be in \[1, 7\]'):
        GDKDLoss(k=(1, 8), use_fused=False)(s, t, labels)
    with pytest.raises(ValueError, match=r'GDKD3 needs an int k >= 2'):
        GDKD3Loss(k=1)
    with pytest.raises(ValueError, match='strictly increasing'):
        GDKDLoss(k=(3, 3))
    with pytest.raises(ValueError, match='4 groups need 4 leaf weights'):
        GDKDLoss(k=(1, 3, 6), leaf_weights=(1.0, 2.0))
    with pytest.raises(ValueError, match='temperature must be > 0'):
        KDLoss(temperature=0)
    with pytest.raises(ValueError, match='must start with "loss_"'):
        KDLoss(loss_name='kd')
    with pytest.raises(ValueError, match='does not fit logits'):
        GDKDLoss()(s, t, labels[:1])
