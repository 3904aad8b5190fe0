"""Logit standardisation (the ``standardize`` option of every loss) against
the independent float64 references in ``reference.py``: values and
gradients of every loss and mode on the plain and the fused path, on
segmentation maps (each pixel a row), constant (zero-variance) rows and
groups, the NaN rule, the official normalisation's constants, and that
``standardize=None`` changes nothing."""
import math

import pytest
import torch

import gdkd_seg  # noqa: F401
from gdkd_seg.losses import (DISTLoss, DKDLoss, GDKD3Loss, GDKDLoss, KDLoss,
                             distill_losses)
from gdkd_seg.losses import functional
from gdkd_seg.losses.fused import fused_partitioned_kl
from reference import (cut_groups, dist, group_standardized_row, kl_row,
                       label_groups, pixel_rows, zscore)
from test_loss_options import MEMBERS, assert_matches, case, value_and_grad


def zscore_map(x, unbiased=True):
    """Each pixel's logits of a ``(B, C, H, W)`` map z-scored."""
    return zscore(x, dim=1, unbiased=unbiased)


def pixel_groups(name, teacher_row, label):
    _, _, cuts, *_ = MEMBERS[name]
    if cuts == 'label':
        return label_groups(len(teacher_row), label)
    return cut_groups(teacher_row, cuts)


def reference(name, x, t, labels, mode, kl_type='forward'):
    """Mean over the non-void pixels of the member's standardised loss."""
    _, _, _, w_group, leaves, T = MEMBERS[name]
    if mode == 'global':
        x, t = zscore_map(x), zscore_map(t)
    sr, tr = pixel_rows(x), pixel_rows(t)
    flat = labels.reshape(len(labels), -1)
    rows = []
    for b, n in (flat != 255).nonzero().tolist():
        groups = pixel_groups(name, tr[b, n].detach().numpy(), int(flat[b, n]))
        if mode == 'global':
            rows.append(
                kl_row(sr[b, n], tr[b, n], groups, w_group, leaves, T,
                       kl_type))
        else:
            rows.append(
                group_standardized_row(sr[b, n], tr[b, n], groups, w_group,
                                       leaves, T, mode, kl_type))
    return torch.stack(rows).mean()


def check(name,
          mode,
          use_fused,
          s,
          t,
          labels,
          kl_type='forward',
          grad_atol=1e-12):
    cls, kwargs, *_ = MEMBERS[name]
    loss_fn = cls(
        standardize=mode,
        use_fused=use_fused,
        kl_type=kl_type,
        loss_weight=0.7,
        **kwargs)
    got = value_and_grad(loss_fn, s, t, labels)
    x = s.clone().requires_grad_(True)
    ref = 0.7 * reference(name, x, t, labels, mode, kl_type)
    assert got[0].item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(
        got[1], torch.autograd.grad(ref, x)[0], rtol=1e-9, atol=grad_atol)
    return got


MODES = [(name, 'global')
         for name in MEMBERS] + [(name, mode) for name in ('gdkd', 'gdkd3')
                                 for mode in ('both', 'other')]


@pytest.mark.parametrize('use_fused', [False, True])
@pytest.mark.parametrize('name,mode', MODES)
def test_standardized_losses_match_reference(name, mode, use_fused):
    s, t, labels = case(40)
    got = check(name, mode, use_fused, s, t, labels)
    # Standardising changes the loss (the case is not already z-scored).
    cls, kwargs, *_ = MEMBERS[name]
    plain = cls(use_fused=use_fused, loss_weight=0.7, **kwargs)(s, t, labels)
    assert abs(got[0].item() - plain.item()) > 1e-3


@pytest.mark.parametrize('kl_type', ['reverse', 'both'])
@pytest.mark.parametrize('name,mode', [('gdkd', 'both'), ('gdkd3', 'other'),
                                       ('kd', 'global')])
def test_standardized_losses_with_kl_type_match_reference(name, mode, kl_type):
    s, t, labels = case(41)
    check(name, mode, False, s, t, labels, kl_type)


@pytest.mark.parametrize('per_image', [False, True])
def test_dist_standardized_matches_reference(per_image):
    s, t, labels = case(42)
    loss_fn = DISTLoss(
        standardize='global',
        temperature=2.0,
        beta=1.5,
        gamma=0.5,
        per_image_intra=per_image)
    got = value_and_grad(loss_fn, s, t, labels)
    x = s.clone().requires_grad_(True)
    valid = (labels != 255).reshape(len(labels), -1)
    ref = dist(zscore_map(x), zscore_map(t), valid, 2.0, 1.5, 0.5, per_image)
    assert_matches(got, (ref.detach(), torch.autograd.grad(ref, x)[0]))


def test_global_mode_is_the_official_lskd_normalisation():
    """Unbiased std, eps 1e-7 added to the std, both logits standardised,
    the temperature still dividing, T^2 kept: the official
    ``mdistiller/distillers/LSKD.py`` formula written out on two rows."""
    s = torch.tensor([[1., 2., 4., -1.], [0.5, 0.5, 3., 0.]],
                     dtype=torch.float64)
    t = torch.tensor([[3., -2., 0., 1.], [2., 1., 1., -4.]],
                     dtype=torch.float64)
    T = 2.0

    def z(x):
        return (x - x.mean(1, keepdim=True)) / (1e-7 + x.std(1, keepdim=True))

    q = torch.softmax(z(t) / T, 1)
    want = (q * (q.log() - torch.log_softmax(z(s) / T, 1))).sum(1).mean()
    got = KDLoss(temperature=T, standardize='global')(s, t)
    assert got.item() == pytest.approx(T * T * want.item(), rel=1e-12)


def test_global_mode_ignores_each_rows_shift_and_scale():
    """A z-scored row forgets its mean and spread (up to eps)."""
    s, t, labels = case(43)
    loss_fn = GDKDLoss(standardize='global', temperature=2.0)
    shift = torch.randn(2, 1, 3, 4, dtype=torch.float64) * 10
    scale = torch.rand(2, 1, 3, 4, dtype=torch.float64) * 5 + 0.1
    assert loss_fn(s * scale + shift, t * 3 - 7, labels).item() == \
        pytest.approx(loss_fn(s, t, labels).item(), rel=1e-6)


@pytest.mark.parametrize('use_fused', [False, True])
@pytest.mark.parametrize('name,mode', MODES)
def test_zero_variance_rows_and_groups_are_finite(name, mode, use_fused):
    """A row of equal logits standardises to zeros, and its gradient is the
    derivative of the formula there: finite (torch.std's backward is 0/0)
    and equal to the reference's."""
    s, t, labels = case(44)
    s[0, :, 0, 0] = 2.5  # a constant student row
    t[0, :, 0, 1] = -1.0  # a constant teacher row
    s[1, :, 1, 1] = t[1, :, 1, 1] = 0.0  # both
    # Ties make a constant rest group (GDKD: k=3 of 7 classes).
    s[1, :, 2, 2] = torch.tensor([5., 4., 3., 1., 1., 1., 1.])
    t[1, :, 2, 2] = s[1, :, 2, 2] / 2
    labels[0, 0, :2] = 1
    labels[1, 1, 1] = labels[1, 2, 2] = 0
    # 1 / eps = 1e7 scales the rounding of dL/dz (1e-16) in those rows.
    loss, grad = check(name, mode, use_fused, s, t, labels, grad_atol=1e-8)
    assert grad.abs().max() > 1e3  # the 1 / eps rows are there
    assert math.isfinite(loss.item()) and torch.isfinite(grad).all()


def test_zero_variance_gradient_is_the_projection_over_eps():
    """At a constant student row z = 0, and dz/ds = (I - 1/C) / eps."""
    s = torch.full((1, 5), 3.0, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[1., 0., 2., -1., 0.5]], dtype=torch.float64)
    loss = KDLoss(standardize='global', use_fused=False)(s, t)
    grad, = torch.autograd.grad(loss, s)
    # dL/dz at z = 0 for KD with T = 1: p - q with p uniform.
    dz = 0.2 - torch.softmax(zscore(t), 1)
    want = (dz - dz.mean()) / 1e-7
    torch.testing.assert_close(grad, want, rtol=1e-9, atol=0)


@pytest.mark.parametrize('use_fused', [False, True])
@pytest.mark.parametrize('mode', ['global', 'both'])
def test_standardize_keeps_the_nan_rule(mode, use_fused):
    """A non-finite logit at an ignored pixel changes nothing (0 gradient
    there); at a valid pixel the loss is NaN."""
    s, t, labels = case(45)
    labels[0, 0, 0] = 255
    loss_fn = GDKDLoss(standardize=mode, use_fused=use_fused)
    clean = loss_fn(s, t, labels)
    s[0, :, 0, 0] = math.inf
    t[0, 2, 0, 0] = math.nan
    x = s.clone().requires_grad_(True)
    loss = loss_fn(x, t, labels)
    grad, = torch.autograd.grad(loss, x)
    assert loss.item() == pytest.approx(clean.item(), rel=1e-12)
    assert torch.all(grad[0, :, 0, 0] == 0) and torch.isfinite(grad).all()
    s[1, 4, 2, 3] = -math.inf
    labels[1, 2, 3] = 0
    assert math.isnan(loss_fn(s, t, labels))


def test_float32_fused_agrees_with_float64_reference():
    s, t, labels = case(46, c=19)
    loss_fn = GDKDLoss(standardize='global', k=5, w2=8.0, temperature=4.0)
    got = value_and_grad(loss_fn, s.float(), t.float(), labels)
    want = value_and_grad(
        GDKDLoss(
            standardize='global',
            k=5,
            w2=8.0,
            temperature=4.0,
            use_fused=False), s, t, labels)
    assert got[0].item() == pytest.approx(want[0].item(), rel=1e-5)
    torch.testing.assert_close(got[1].double(), want[1], rtol=1e-4, atol=1e-7)


def test_rows_and_maps_agree():
    """A map's pixel is a row: the same loss on ``(N, C)`` rows."""
    s, t, labels = case(47)
    rows = (pixel_rows(s).reshape(-1, 7), pixel_rows(t).reshape(-1, 7),
            labels.reshape(-1))
    for loss_fn in (GDKDLoss(standardize='other'),
                    KDLoss(standardize='global'),
                    DISTLoss(standardize='global', gamma=0.0)):
        assert loss_fn(*rows).item() == pytest.approx(
            loss_fn(s, t, labels).item(), rel=1e-12)


@pytest.mark.parametrize('name', MEMBERS)
def test_standardize_none_is_bit_identical_and_runs_nothing(name, monkeypatch):

    def refuse(*args, **kwargs):
        raise AssertionError('standardisation ran with standardize=None')

    monkeypatch.setattr(distill_losses, 'standardize', refuse)
    monkeypatch.setattr(functional, 'standardize_groups', refuse)
    cls, kwargs, *_ = MEMBERS[name]
    s, t, labels = case(48, c=19)
    s, t = s.float(), t.float()
    rows = labels.reshape(-1)
    for use_fused in (True, False):
        loss_fn = cls(standardize=None, use_fused=use_fused, **kwargs)
        got = value_and_grad(loss_fn, s, t, labels)
        x = s.clone().requires_grad_(True)
        core = fused_partitioned_kl(x, t, loss_fn.spec, rows, 255, 1.0) \
            if use_fused else functional.plain_loss(x, t, loss_fn.spec, rows)
        assert torch.equal(got[0], core.detach())
        assert torch.equal(got[1], torch.autograd.grad(core, x)[0])
    got = DISTLoss(standardize=None)(s, t, labels)
    assert torch.equal(got, DISTLoss()(s, t, labels))


@pytest.mark.parametrize('cls,mode', [(KDLoss, 'both'), (DKDLoss, 'other'),
                                      (DISTLoss, 'both'), (GDKDLoss, 'zscore'),
                                      (GDKD3Loss, True)])
def test_bad_standardize_raises(cls, mode):
    with pytest.raises(ValueError, match='standardize must be one of'):
        cls(standardize=mode)


def test_global_needs_two_classes():
    with pytest.raises(ValueError, match='at least 2 classes'):
        KDLoss(standardize='global')(torch.zeros(3, 1), torch.zeros(3, 1))


def test_plain_loss_takes_only_the_group_modes():
    s, t, labels = case(49)
    rows = labels.reshape(-1)
    with pytest.raises(ValueError, match='standardize must be one of'):
        functional.plain_loss(s, t, GDKDLoss().spec, rows,
                              standardize='global')
    with pytest.raises(ValueError, match='needs groups'):
        functional.plain_loss(s, t, KDLoss().spec, rows, standardize='both')
