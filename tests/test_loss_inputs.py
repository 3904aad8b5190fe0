"""What the losses do with bad or unusual input, on the plain path and at
the module boundary: non-finite logits, ignored pixels whatever their
logits, labels that are no class, non-finite parameters, empty batches,
``ignore_index=None`` (the official all-pixel mean), and the official
defaults."""
import math
import runpy

import numpy as np
import pytest
import torch

import gdkd_seg  # noqa: F401
from gdkd_seg.losses import DKDLoss, GDKD3Loss, GDKDLoss, KDLoss
from gdkd_seg.losses import functional
from gdkd_seg.losses import partition
from reference import gdkd_row, kd_row, kl, softmax

PLAIN = {
    'kd': lambda **kw: KDLoss(use_fused=False, **kw),
    'dkd': lambda **kw: DKDLoss(use_fused=False, **kw),
    'gdkd': lambda **kw: GDKDLoss(use_fused=False, **kw),
    'three-cut': lambda **kw: GDKDLoss(k=(1, 3, 6), use_fused=False, **kw),
    'adaptive': lambda **kw: GDKDLoss(k='adaptive', use_fused=False, **kw),
}


def case(seed, b=2, c=19, h=3, w=4):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, c, h, w, generator=g) * 3
    t = torch.randn(b, c, h, w, generator=g) * 3
    labels = torch.randint(0, c, (b, h, w), generator=g)
    labels[0, 0, 0] = 255
    return s, t, labels


def official_defects():
    """The names defined by tools/analysis_tools/official_defects.py."""
    return runpy.run_path('tools/analysis_tools/official_defects.py')


@pytest.mark.parametrize('name', PLAIN)
@pytest.mark.parametrize('which', ['student', 'teacher'])
@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf])
def test_non_finite_logit_in_a_valid_row_gives_nan(name, which, value):
    s, t, labels = case(1)
    clean = PLAIN[name](reduction='none')(s, t, labels)
    (s if which == 'student' else t)[1, 4, 2, 3] = value  # a valid pixel
    rows = PLAIN[name](reduction='none')(s, t, labels)
    bad = 1 * 12 + 2 * 4 + 3  # that pixel's row
    assert math.isnan(rows[bad])
    others = torch.arange(len(rows)) != bad
    torch.testing.assert_close(rows[others], clean[others])
    assert math.isnan(PLAIN[name]()(s, t, labels))
    assert math.isnan(PLAIN[name](reduction='sum')(s, t, labels))


@pytest.mark.parametrize('name', PLAIN)
@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf])
def test_ignored_rows_stay_ignored_whatever_their_logits(name, value):
    s, t, labels = case(2)
    want = PLAIN[name]()(s, t, labels)
    s[0, :, 0, 0] = value  # the ignored pixel
    t[0, 3, 0, 0] = value
    x = s.clone().requires_grad_(True)
    loss = PLAIN[name]()(x, t, labels)
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    loss.backward()
    assert torch.all(x.grad[0, :, 0, 0] == 0)
    assert torch.isfinite(x.grad).all()
    rows = PLAIN[name](reduction='none')(s, t, labels)
    assert rows[0] == 0


@pytest.mark.parametrize('name', ['gdkd', 'dkd'])
def test_labels_that_are_no_class_raise(name):
    s, t, labels = case(3)
    labels[1, 0, :2] = 100
    labels[1, 2, 1] = -3
    with pytest.raises(ValueError, match=r'\[0, 19\).*3 pixels.*-3, 100'):
        PLAIN[name]()(s, t, labels)
    with pytest.raises(ValueError, match='100'):
        functional.plain_loss(s, t, PLAIN[name]().spec, labels.reshape(-1))
    # Without an ignore label, 255 is no class either (DKD reads it).
    with pytest.raises(ValueError, match='255'):
        DKDLoss(ignore_index=None, use_fused=False)(s, t, case(3)[2])


NON_FINITE_PARAMETERS = [
    (KDLoss, 'temperature'), (KDLoss, 'loss_weight'),
    (DKDLoss, 'alpha'), (DKDLoss, 'beta'), (DKDLoss, 'temperature'),
    (GDKDLoss, 'w0'), (GDKDLoss, 'w1'), (GDKDLoss, 'w2'),
    (GDKDLoss, 'temperature'), (GDKDLoss, 'loss_weight'),
    (GDKDLoss, 'adaptive_mass'), (GDKD3Loss, 'w0'), (GDKD3Loss, 'w1'),
    (GDKD3Loss, 'w2'), (GDKD3Loss, 'temperature'),
]


@pytest.mark.parametrize('cls,name', NON_FINITE_PARAMETERS)
@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf])
def test_non_finite_parameters_are_rejected_at_construction(cls, name,
                                                            value):
    kwargs = {name: value}
    if name == 'adaptive_mass':
        kwargs['k'] = 'adaptive'
    with pytest.raises(ValueError, match='must be a finite number'):
        cls(**kwargs)


@pytest.mark.parametrize('value', [math.nan, math.inf])
def test_non_finite_leaf_weights_are_rejected(value):
    with pytest.raises(ValueError, match='leaf weight of group 2'):
        GDKDLoss(k=(1, 3, 6), leaf_weights=(1.0, 1.0, value, 1.0))


@pytest.mark.parametrize('shape,teacher_shape', [
    ((0, 19, 4, 4), (0, 19, 8, 8)),  # empty batch
    ((2, 19, 0, 4), (2, 19, 8, 8)),  # zero-size map
    ((0, 19), (0, 19)),  # no rows
])
@pytest.mark.parametrize('name', PLAIN)
def test_empty_input_gives_zero_with_zero_gradient(shape, teacher_shape,
                                                   name):
    s = torch.randn(shape, requires_grad=True)
    t = torch.randn(teacher_shape)
    labels = torch.zeros((shape[0], 16, 16) if len(shape) == 4 else (0, ),
                         dtype=torch.long)
    for reduction in ('mean', 'sum'):
        loss = PLAIN[name](reduction=reduction)(s, t, labels)
        grad, = torch.autograd.grad(loss, s)
        assert loss.item() == 0 and grad.shape == s.shape
    rows = PLAIN[name](reduction='none')(s, t, labels)
    assert rows.shape == (0, )


@pytest.mark.parametrize('use_fused', [False, True])
def test_ignore_index_none_is_the_official_mean_over_every_pixel(use_fused):
    s, t, labels = case(4, c=19, h=4, w=5)
    labels[:, :2] = 255  # void pixels: counted all the same
    official = official_defects()
    rows_s = s.permute(0, 2, 3, 1).reshape(-1, 19).double().numpy()
    rows_t = t.permute(0, 2, 3, 1).reshape(-1, 19).double().numpy()

    gdkd = GDKDLoss(ignore_index=None, use_fused=use_fused)(s, t, labels)
    want = np.mean([gdkd_row(a, b, 3, 1.0, 1.0, 2.0, 1.0)
                    for a, b in zip(rows_s, rows_t)])
    assert gdkd.item() == pytest.approx(want, rel=2e-5)
    # The official formula agrees here (no mass below its clamp).
    assert gdkd.item() == pytest.approx(
        official['official_gdkd'](s, t).item(), rel=1e-4)

    kd = KDLoss(temperature=2.0, ignore_index=None,
                use_fused=use_fused)(s, t, labels)
    want = np.mean([kd_row(a, b, 2.0) for a, b in zip(rows_s, rows_t)])
    assert kd.item() == pytest.approx(want, rel=2e-5)
    assert kd.item() == pytest.approx(
        official['official_kd'](s, t, 2.0).item(), rel=1e-5)
    masked = GDKDLoss(use_fused=use_fused)(s, t, labels)
    assert masked.item() != pytest.approx(gdkd.item(), rel=1e-3)


def test_defaults_are_the_official_settings():
    assert GDKDLoss().spec == partition.gdkd(k=3, w0=1.0, w1=1.0, w2=2.0,
                                             temperature=1.0)
    assert DKDLoss().spec == partition.dkd(alpha=1.0, beta=2.0,
                                           temperature=1.0)
    assert GDKD3Loss().spec == partition.gdkd3(k=4, w0=1.0, w1=1.0, w2=2.0,
                                               temperature=1.0)
    assert KDLoss().spec == partition.kd(temperature=1.0)
    adaptive = GDKDLoss(k='adaptive').spec.adaptive
    assert (adaptive.mass, adaptive.max_k) == (0.9, None)
    for loss in (KDLoss(), DKDLoss(), GDKDLoss(), GDKD3Loss()):
        assert (loss.loss_weight, loss.ignore_index, loss.reduction) == \
            (1.0, 255, 'mean')


def test_official_defects_script_shows_each_defect():
    shown = {title.split('.')[0]: (official, exact) for title, _, official,
             exact in official_defects()['defects']()}
    official, exact = shown['1']  # the -1000 mask: the wrong support
    rest_t, rest_s = np.array([0.0, 1.0, 2.0]), np.array([2.0, 0.0, 1.0])
    assert exact == pytest.approx(kl(softmax(rest_t), softmax(rest_s)),
                                  rel=1e-5)
    assert abs(official - exact) > 0.5
    (official_loss, official_grad), (loss, grad) = shown['2']
    assert not math.isfinite(official_loss)
    assert not all(map(math.isfinite, official_grad))
    assert math.isfinite(loss) and all(map(math.isfinite, grad))
    (official_loss, official_grad), (loss, grad) = shown['3']
    assert official_loss < 0.6 * loss
    assert official_grad == [0.0, 0.0] and all(g < 0 for g in grad)
    assert shown['4'] == ([2, 3], [0, 2])
    assert shown['5'][0].startswith('TypeError')
    assert shown['6'][0].startswith('RuntimeError')


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bool])
@pytest.mark.parametrize('use_fused', [False, True])
def test_labels_must_be_integers(dtype, use_fused):
    s, t, labels = case(5)
    wrong = labels.to(dtype)
    if dtype.is_floating_point:
        wrong[0, 1, 1] = 1.7  # would be read as class 1
    loss = GDKDLoss(use_fused=use_fused)
    with pytest.raises(TypeError, match=f'integer tensor.*{dtype}'):
        loss(s, t, wrong)
    with pytest.raises(TypeError, match='integer tensor'):
        functional.plain_loss(s, t, loss.spec, wrong.reshape(-1))
    for ok in (torch.uint8, torch.int32):
        assert torch.isfinite(loss(s, t, labels.clamp(max=18).to(ok)))


@pytest.mark.parametrize('cls', [KDLoss, GDKDLoss])
def test_loss_weight_must_not_be_negative(cls):
    with pytest.raises(ValueError, match='loss_weight must be >= 0, got -1'):
        cls(loss_weight=-1)
    s, t, labels = case(6)
    assert cls(loss_weight=0.0)(s, t, labels).item() == 0


@pytest.mark.parametrize('make,message', [
    (lambda: KDLoss(temperature='2'), "temperature must be a finite number, "
     "got '2'"),
    (lambda: GDKDLoss(w0='1'), "group weight.*got '1'"),
    (lambda: GDKDLoss(k=3.0), r'cuts \(k\) must be .*ints >= 1, got \(3.0,\)'),
    (lambda: GDKDLoss(k=[1, 3.0]), r'cuts \(k\).*got \(1, 3.0\)'),
    (lambda: GDKD3Loss(k=3.0), 'GDKD3 needs an int k >= 2'),
])
def test_parameters_of_the_wrong_type_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def log_space_gdkd(s, t, k, weights, T):
    """Float64 GDKD (k=None: KD) per row, in log space so that no
    probability underflows at small T."""
    s, t = s.double() / T, t.double() / T
    order = torch.argsort(t, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(t.shape[1]).expand_as(order))
    groups = [rank >= 0] if k is None else [rank < k, rank >= k]
    loss = 0
    for w, g in zip(weights[1:], groups):
        log_p = s.masked_fill(~g, -math.inf).log_softmax(1)
        log_q = t.masked_fill(~g, -math.inf).log_softmax(1)
        loss += w * torch.where(g, log_q.exp() * (log_q - log_p), 0).sum(1)
    if k is not None:
        log_p = torch.stack([s.masked_fill(~g, -math.inf).logsumexp(1)
                             for g in groups], 1).log_softmax(1)
        log_q = torch.stack([t.masked_fill(~g, -math.inf).logsumexp(1)
                             for g in groups], 1).log_softmax(1)
        loss += weights[0] * (log_q.exp() * (log_q - log_p)).sum(1)
    return T * T * loss


@pytest.mark.parametrize('use_fused', [False, True])
@pytest.mark.parametrize('T', [1e-4, 100.0])
@pytest.mark.parametrize('name', ['kd', 'gdkd'])
def test_temperatures_at_the_ends_of_the_range_are_exact(name, T, use_fused):
    g = torch.Generator().manual_seed(7)
    s = torch.randn(64, 19, generator=g) * 3
    t = torch.randn(64, 19, generator=g) * 3
    labels = torch.zeros(64, dtype=torch.long)
    if name == 'kd':
        loss_fn, k, weights = KDLoss(temperature=T), None, (0, 1)
    else:
        loss_fn, k, weights = GDKDLoss(temperature=T), 3, (1, 1, 2)
    loss_fn.use_fused = use_fused
    x = s.clone().requires_grad_(True)
    loss = loss_fn(x, t, labels)
    loss.backward()
    s64 = s.double().requires_grad_(True)
    want = log_space_gdkd(s64, t, k, weights, T).mean()
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-4)
    torch.testing.assert_close(x.grad.double(), s64.grad, rtol=1e-3,
                               atol=1e-4 * s64.grad.abs().max().item())


@pytest.mark.parametrize('T', [1e-10, 5e-5, 101.0, 1e5, 1e20])
@pytest.mark.parametrize('cls', [KDLoss, DKDLoss, GDKDLoss, GDKD3Loss])
def test_temperatures_float32_cannot_compute_are_refused(cls, T):
    with pytest.raises(ValueError,
                       match=r'temperature must be in \[0.0001, 100\]'):
        cls(temperature=T)
