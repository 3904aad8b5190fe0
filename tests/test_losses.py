"""The loss family against an independent float64 computation, its
identities, and the call contract (ignore pixels, resizing, dtypes, errors)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from mmseg.registry import MODELS

import gdkd_seg  # noqa: F401
from gdkd_seg.losses import functional as F
from gdkd_seg.losses import partition
from gdkd_seg.losses import DKDLoss, GDKD3Loss, GDKDLoss, KDLoss
from reference import (dkd_row, gdkd3_row, gdkd_row, gdkd_row_grad, kd_row,
                       partition_row_loss, softmax, topk_groups)


def gdkd_spec(k, T):
    return partition.gdkd(k=k, w0=1.0, w1=1.0, w2=2.0, temperature=T)


def rows_of(x):
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).double().numpy()


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


CASES = [  # seed, C, k, T, w0, w1, w2
    (0, 7, 3, 1.0, 1.0, 1.0, 2.0),
    (1, 19, 1, 4.0, 0.5, 2.0, 8.0),
    (2, 19, 5, 0.5, 1.0, 0.0, 6.0),
    (3, 5, 5, 2.0, 2.0, 1.0, 1.0),  # k == C: the rest group is empty
    (4, 150, 10, 1.0, 1.0, 1.0, 2.0),
]


@pytest.mark.parametrize('seed,c,k,T,w0,w1,w2', CASES)
def test_gdkd_value_and_gradient_match_float64_reference(
        seed, c, k, T, w0, w1, w2):
    s, t, labels = random_case(seed, c=c)
    s.requires_grad_(True)
    loss = GDKDLoss(k=k, temperature=T, w0=w0, w1=w1, w2=w2,
                    loss_weight=0.7)(s, t, labels)
    expected = 0.7 * reference_mean(
        lambda a, b, _, **kw: gdkd_row(a, b, **kw), s.detach(), t, labels,
        k=k, w0=w0, w1=w1, w2=w2, T=T)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=2e-5, abs=1e-6)

    loss.backward()
    sr, tr = rows_of(s.detach()), rows_of(t)
    valid = labels.reshape(-1).numpy() != 255
    want = np.stack([
        gdkd_row_grad(sr[i], tr[i], k, w0, w1, w2, T) if valid[i] else
        np.zeros(c) for i in range(len(sr))
    ]) * 0.7 / valid.sum()
    got = rows_of(s.grad)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('seed,c,k,T,w0,w1,w2', CASES[:4])
def test_gdkd3_matches_float64_reference(seed, c, k, T, w0, w1, w2):
    k = max(k, 2)
    s, t, labels = random_case(seed, c=c)
    loss = GDKD3Loss(k=k, temperature=T, w0=w0, w1=w1, w2=w2)(s, t, labels)
    expected = reference_mean(
        lambda a, b, _, **kw: gdkd3_row(a, b, **kw), s, t, labels,
        k=k, w0=w0, w1=w1, w2=w2, T=T)
    assert loss.item() == pytest.approx(expected, rel=2e-5, abs=1e-6)


@pytest.mark.parametrize('seed,T,alpha,beta', [(0, 1.0, 1.0, 8.0),
                                               (5, 4.0, 0.5, 2.0)])
def test_dkd_and_kd_match_float64_reference(seed, T, alpha, beta):
    s, t, labels = random_case(seed, c=11)
    dkd = DKDLoss(alpha=alpha, beta=beta, temperature=T)(s, t, labels)
    assert dkd.item() == pytest.approx(
        reference_mean(lambda a, b, y: dkd_row(a, b, y, alpha, beta, T), s, t,
                       labels), rel=2e-5)
    kd = KDLoss(temperature=T)(s, t, labels)
    assert kd.item() == pytest.approx(
        reference_mean(lambda a, b, _: kd_row(a, b, T), s, t, labels),
        rel=2e-5)


def test_k1_equals_dkd_partitioned_by_teacher_top1():
    s, t, labels = random_case(7, c=19)
    top1 = t.argmax(1)
    gdkd = GDKDLoss(k=1, w0=1.5, w1=123.0, w2=3.0, temperature=2.0)(s, t,
                                                                    labels)
    # DKD with the teacher's top-1 as the "target"; w1 has no effect at k=1.
    s_rows, t_rows = F.flatten_logits(s), F.flatten_logits(t)
    dkd_rows = F.row_losses(
        partition.dkd(alpha=1.5, beta=3.0, temperature=2.0), s_rows, t_rows,
        top1.reshape(-1))
    valid = labels.reshape(-1) != 255
    assert gdkd.item() == pytest.approx(dkd_rows[valid].mean().item(),
                                        rel=1e-6)


def test_per_row_weights_q1_q2_recover_kd():
    s, t, _ = random_case(8, c=19)
    s_rows, t_rows = F.flatten_logits(s), F.flatten_logits(t)
    k, T = 4, 3.0
    groups = (F.topk_group_index(t_rows, k) >= k).long()
    q = torch.softmax(t_rows / T, 1)
    weights = torch.stack([(q * (groups == g)).sum(1) for g in (0, 1)], 1)
    split = F.partitioned_kl(s_rows, t_rows, groups, 2, 1.0, weights, T)
    whole = F.row_losses(partition.kd(temperature=T), s_rows, t_rows)
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('loss', [
    GDKDLoss(k=3), GDKD3Loss(k=4, w1=2.0), KDLoss(temperature=2.0),
    DKDLoss(beta=2.0)
])
def test_gradient_rows_sum_to_zero_and_teacher_gets_none(loss):
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
                 GDKD3Loss(k=3, w1=0.5), DKDLoss(), KDLoss(temperature=3.0)):
        assert torch.autograd.gradcheck(lambda x: loss(x, t, labels), (s, ))


def test_ties_at_kth_logit_go_to_lowest_index():
    t = torch.tensor([[1.0, 3.0, 2.0, 2.0, 2.0, 0.0]])
    ranks = F.topk_group_index(t, 3)
    assert ranks.tolist() == [[4, 0, 1, 2, 3, 5]]
    np.testing.assert_array_equal(topk_groups(t[0].numpy(), 3),
                                  [1, 0, 0, 0, 1, 1])


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
        loss = F.row_losses(gdkd_spec(k, T), s, t)
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
        for spec in (gdkd_spec(2, T),
                     partition.gdkd3(k=3, w0=1, w1=1, w2=2, temperature=T),
                     partition.kd(temperature=T)):
            out = F.row_losses(spec, x, x)
            assert torch.all(out.abs() < 1e-6), out


def test_underflowing_group_mass_keeps_finite_gradient():
    s = torch.tensor([[200.0, 0.0, -1.0, -2.0]], requires_grad=True)
    t = torch.tensor([[0.0, 150.0, -2.0, -1.0]])
    loss = GDKDLoss(k=1)(s, t)
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
    loss = GDKDLoss()(sh, th, labels)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    ref = GDKDLoss()(sh.detach().float(), th.float(), labels)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    loss.backward()
    assert sh.grad.dtype == dtype and torch.isfinite(sh.grad).all()


def test_full_resolution_labels_are_resized_by_nearest_neighbour():
    s, t, _ = random_case(13, b=2, c=5, h=4, w=6)
    full = torch.randint(0, 5, (2, 32, 48))
    full[:, :8] = 255
    small = TF.interpolate(full[:, None].float(), size=(4, 6),
                           mode='nearest')[:, 0].long()
    loss = GDKDLoss(k=2)
    assert loss(s, t, full).item() == pytest.approx(
        loss(s, t, small).item(), rel=1e-7)
    assert loss(s, t, full[:, None]).item() == pytest.approx(
        loss(s, t, small).item(), rel=1e-7)
    assert (small == 255).any() and (small != 255).any()


def test_ignored_pixels_contribute_nothing():
    s, t, labels = random_case(14, c=9)
    loss = GDKDLoss(k=2)
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
    a = GDKDLoss(ignore_index=-1)(s, t, labels)
    b = GDKDLoss()(s, t, labels.masked_fill(labels == -1, 255))
    assert a.item() == pytest.approx(b.item(), rel=1e-7)
    every = GDKDLoss()(s, t)
    want = np.mean([
        gdkd_row(a_, b_, 3, 1.0, 1.0, 2.0, 1.0)
        for a_, b_ in zip(rows_of(s), rows_of(t))
    ])
    assert every.item() == pytest.approx(want, rel=2e-5)


def test_teacher_map_is_resized_to_student_grid_bilinearly():
    s, _, labels = random_case(16, c=7, h=4, w=4)
    t_big = torch.randn(2, 7, 8, 8)
    t_small = TF.interpolate(t_big, size=(4, 4), mode='bilinear',
                             align_corners=False)
    loss = GDKDLoss()
    assert loss(s, t_big, labels).item() == pytest.approx(
        loss(s, t_small, labels).item(), rel=1e-6)


def test_row_logits_with_row_labels():
    g = torch.Generator().manual_seed(17)
    s, t = torch.randn(10, 100, generator=g), torch.randn(10, 100, generator=g)
    y = torch.randint(0, 100, (10, ), generator=g)
    got = DKDLoss(temperature=4.0)(s, t, y)
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
    total = GDKDLoss(reduction='sum')(s, t, labels)
    assert total.item() == pytest.approx(rows.sum().item(), rel=1e-6)


def test_partition_identity_holds_for_any_partition():
    g = torch.Generator().manual_seed(19)
    s, t = torch.randn(5, 9, generator=g), torch.randn(5, 9, generator=g)
    groups = torch.randint(0, 3, (5, 9), generator=g)
    q = torch.softmax(t.double(), 1)
    mass = torch.stack([(q * (groups == i)).sum(1) for i in range(3)], 1)
    split = F.partitioned_kl(s.double(), t.double(), groups, 3, 1.0, mass)
    torch.testing.assert_close(
        split, F.row_losses(partition.kd(temperature=1.0), s.double(),
                            t.double()))
    for i in range(5):
        want = partition_row_loss(s[i].double().numpy(),
                                  t[i].double().numpy(), groups[i].numpy(),
                                  0.3, [1.0, 2.0, 0.5], 1.0)
        got = F.partitioned_kl(s[i:i + 1].double(), t[i:i + 1].double(),
                               groups[i:i + 1], 3, 0.3, [1.0, 2.0, 0.5])
        assert got.item() == pytest.approx(want, rel=1e-10)


def test_registry_builds_losses_with_mmseg_scope():
    loss = MODELS.build(dict(type='GDKDLoss', k=2, loss_weight=0.5))
    assert isinstance(loss, GDKDLoss) and loss.loss_name == 'loss_gdkd'
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
        GDKDLoss(k=8)(s, t, labels)
    with pytest.raises(ValueError, match=r'GDKD3 needs an int k >= 2'):
        GDKD3Loss(k=1)
    with pytest.raises(ValueError, match='temperature must be > 0'):
        KDLoss(temperature=0)
    with pytest.raises(ValueError, match='must start with "loss_"'):
        KDLoss(loss_name='kd')
    with pytest.raises(ValueError, match='does not fit logits'):
        GDKDLoss()(s, t, labels[:1])
