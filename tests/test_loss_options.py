"""DIST and the official options of the KL members (``intra_weight``,
``ignore_incorrect``, ``kl_type``, ``entropy_weight``) against the
independent float64 torch references in ``reference.py``: values and
gradients on the plain and the fused path, constant (zero-variance) rows and
classes, ignore labels, per-image intra, T != 1, ``ignore_index=None``; and
that with the options off every loss is bit-identical to its core."""
import math

import pytest
import torch

import gdkd_seg  # noqa: F401
from gdkd_seg.losses import (DISTLoss, DKDLoss, GDKD3Loss, GDKDLoss, KDLoss,
                             distill_losses)
from gdkd_seg.losses import functional
from gdkd_seg.losses.fused import fused_partitioned_kl
from reference import (cut_groups, dist, entropy_row, kl_row, label_groups,
                       pixel_rows)


def case(seed, b=2, c=7, h=3, w=4, scale=3.0):
    """float64 logits and labels with void (255) pixels."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, c, h, w, generator=g, dtype=torch.float64) * scale
    t = torch.randn(b, c, h, w, generator=g, dtype=torch.float64) * scale
    labels = torch.randint(0, c, (b, h, w), generator=g)
    labels[torch.rand(b, h, w, generator=g) < 0.25] = 255
    return s, t, labels


def valid_pixels(labels, t=None):
    """``(B, H * W)`` pixels that count: not void, and (given the teacher)
    where the teacher's arg-max is the label."""
    valid = (labels != 255).reshape(len(labels), -1)
    if t is not None:
        valid &= pixel_rows(t).argmax(2) == labels.reshape(len(labels), -1)
    return valid


def value_and_grad(loss_fn, s, t, labels):
    x = s.clone().requires_grad_(True)
    loss = loss_fn(x, t, labels)
    grad, = torch.autograd.grad(loss, x)
    return loss.detach(), grad


def assert_matches(got, want, rtol=1e-9):
    (loss, grad), (ref, ref_grad) = got, want
    assert loss.item() == pytest.approx(ref.item(), rel=rtol, abs=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=rtol, atol=1e-12)


# ---------------------------------------------------------------- DIST

DIST_CASES = {
    # name: (DISTLoss kwargs, ignore labels?)
    'defaults': (dict(), True),
    'T=2.5, weights': (dict(temperature=2.5, beta=0.5, gamma=3.0), True),
    'per-image intra': (dict(per_image_intra=True, temperature=0.7), True),
    'ignore_index=None': (dict(ignore_index=None), False),
    'sum': (dict(reduction='sum', temperature=2.0), True),
}


@pytest.mark.parametrize('name', DIST_CASES)
def test_dist_value_and_gradient_match_reference(name):
    kwargs, masked = DIST_CASES[name]
    s, t, labels = case(sorted(DIST_CASES).index(name))
    # Constant rows (uniform student / teacher pixels), and in image 1 a
    # student with the same distribution at every pixel: each of its
    # classes is constant across the image.
    s[0, :, 0, 1] = 2.0
    t[0, :, 1, 2] = -1.0
    s[1] = s[1, :, :1, :1]
    labels[0, 0, 1] = labels[0, 1, 2] = 3
    got = value_and_grad(DISTLoss(**kwargs), s, t, labels)

    options = dict(temperature=1.0, beta=1.0, gamma=1.0,
                   per_image_intra=False, reduction='mean')
    options.update({k: v for k, v in kwargs.items() if k in options})
    valid = valid_pixels(labels) if masked else \
        torch.ones(2, 12, dtype=torch.bool)
    x = s.clone().requires_grad_(True)
    ref = dist(x, t, valid, options['temperature'], options['beta'],
               options['gamma'], options['per_image_intra'],
               options['reduction'])
    assert_matches(got, (ref.detach(), torch.autograd.grad(ref, x)[0]))


def test_dist_float32_agrees_with_float64_reference():
    s, t, labels = case(11, c=19, h=8, w=8)
    loss, grad = value_and_grad(DISTLoss(per_image_intra=True), s.float(),
                                t.float(), labels)
    want, want_grad = value_and_grad(DISTLoss(per_image_intra=True), s, t,
                                     labels)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    torch.testing.assert_close(grad.double(), want_grad, rtol=1e-4,
                               atol=1e-9)


def test_dist_of_constant_distributions_is_defined_and_finite():
    """Uniform student and teacher: every pixel and class has zero
    variance, each correlation is 0, so each term is 1 (the official eps
    gives the same), with a zero, finite gradient; in float32 too, where a
    constant's mean rounds off its value."""
    for dtype in (torch.float32, torch.float64):
        s = torch.full((2, 19, 4, 4), 0.3, dtype=dtype, requires_grad=True)
        t = torch.full((2, 19, 4, 4), -5.0, dtype=dtype)
        for per_image in (False, True):
            loss = DISTLoss(beta=2.0, gamma=0.5,
                            per_image_intra=per_image)(s, t)
            grad, = torch.autograd.grad(loss, s)
            assert loss.item() == 2.5
            assert torch.all(grad == 0)


def test_dist_with_identical_logits_is_zero():
    s, t, labels = case(12, c=19)
    assert DISTLoss()(t, t, labels).item() == pytest.approx(0, abs=1e-12)


def test_dist_reduction_none_is_per_pixel_inter_and_needs_gamma_0():
    s, t, labels = case(13)
    rows = DISTLoss(gamma=0.0, beta=2.0, reduction='none')(s, t, labels)
    valid = valid_pixels(labels).reshape(-1)
    assert rows.shape == (24, ) and torch.all(rows[~valid] == 0)
    want = dist(s, t, valid.reshape(2, -1), 1.0, 2.0, 0.0, False, 'sum')
    assert rows.sum().item() == pytest.approx(want.item(), rel=1e-12)
    with pytest.raises(ValueError, match="reduction='none' needs gamma=0"):
        DISTLoss(reduction='none')


@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize('which', ['student', 'teacher'])
def test_dist_nan_rule(value, which):
    s, t, labels = case(14)
    clean = DISTLoss(per_image_intra=True)(s, t, labels)
    ignored = tuple((labels == 255).nonzero()[0].tolist())  # b, h, w
    valid = tuple((labels != 255).nonzero()[0].tolist())
    x = (s if which == 'student' else t).clone()
    x[ignored[0], :, ignored[1], ignored[2]] = value
    args = (x, t) if which == 'student' else (s, x)
    student = args[0].clone().requires_grad_(True)
    loss = DISTLoss(per_image_intra=True)(student, args[1], labels)
    grad, = torch.autograd.grad(loss, student)
    assert loss.item() == pytest.approx(clean.item(), rel=1e-12)
    assert torch.all(grad[ignored[0], :, ignored[1], ignored[2]] == 0)
    assert torch.isfinite(grad).all()
    x[valid[0], 2, valid[1], valid[2]] = value
    assert math.isnan(DISTLoss()(*args, labels))


def test_dist_all_ignored_or_empty_gives_zero_with_zero_gradient():
    s, t, labels = case(15)
    x = s.clone().requires_grad_(True)
    loss = DISTLoss()(x, t, torch.full_like(labels, 255))
    loss.backward()
    assert loss.item() == 0 and torch.all(x.grad == 0)
    empty = torch.zeros(0, 7, requires_grad=True)
    assert DISTLoss()(empty, torch.zeros(0, 7)).item() == 0


def test_dist_on_rows_and_resized_teacher():
    s, t, labels = case(16, h=4, w=4)
    rows = DISTLoss()(functional.flatten_logits(s),
                      functional.flatten_logits(t), labels.reshape(-1))
    assert rows.item() == pytest.approx(DISTLoss()(s, t, labels).item(),
                                        rel=1e-12)
    big = torch.nn.functional.interpolate(t, size=(8, 8), mode='bilinear')
    small = torch.nn.functional.interpolate(big, size=(4, 4),
                                            mode='bilinear')
    # (the teacher is resized in float32)
    assert DISTLoss()(s, big, labels).item() == pytest.approx(
        DISTLoss()(s, small, labels).item(), rel=1e-6)


# ------------------------------------------------------ the KL members

# name: (class, kwargs, groups of a row (cuts or 'label'), w_group, leaves,
# T)
MEMBERS = {
    'kd': (KDLoss, dict(temperature=2.0), (), 0.0, [1.0], 2.0),
    'dkd': (DKDLoss, dict(alpha=1.5, beta=4.0, temperature=1.5), 'label',
            1.5, [0.0, 4.0], 1.5),
    'gdkd': (GDKDLoss, dict(k=3, w0=1.0, w1=2.0, w2=3.0, temperature=4.0),
             (3, ), 1.0, [2.0, 3.0], 4.0),
    'gdkd3': (GDKD3Loss, dict(k=4, w0=0.5, w1=1.0, w2=2.0,
                              temperature=0.5), (1, 4), 0.5,
              [0.0, 1.0, 2.0], 0.5),
}


def reference_loss(name, x, t, labels, valid, kl_type='forward',
                   intra_weight=0.0, per_image=False, entropy_weight=0.0):
    """The member's mean over ``valid`` pixels, plus the options."""
    _, _, cuts, w_group, leaves, T = MEMBERS[name]
    sr, tr = pixel_rows(x), pixel_rows(t)
    flat = labels.reshape(len(labels), -1)
    rows, entropies = [], []
    for b, n in valid.nonzero().tolist():
        teacher = tr[b, n].detach().numpy()
        groups = label_groups(len(teacher), int(flat[b, n])) \
            if cuts == 'label' else cut_groups(teacher, cuts)
        rows.append(kl_row(sr[b, n], tr[b, n], groups, w_group, leaves, T,
                           kl_type))
        entropies.append(entropy_row(sr[b, n], T))
    loss = torch.stack(rows).mean()
    if intra_weight:
        loss = loss + intra_weight * dist(x, t, valid, T, 0.0, 1.0,
                                          per_image)
    if entropy_weight:
        loss = loss - entropy_weight * torch.stack(entropies).mean()
    return loss


def check_member(name, use_fused, seed, options, ignore_incorrect=False):
    cls, kwargs, *_ = MEMBERS[name]
    s, t, labels = case(seed)
    if ignore_incorrect:  # make some pixels correct
        labels = torch.where(labels.view(2, 1, 3, 4) != 255,
                             t.argmax(1, keepdim=True), 255)[:, 0]
        labels[0, 0, :3] = (t.argmax(1)[0, 0, :3] + 1) % 7
    loss_fn = cls(use_fused=use_fused, ignore_incorrect=ignore_incorrect,
                  loss_weight=0.7, **kwargs, **options)
    got = value_and_grad(loss_fn, s, t, labels)
    x = s.clone().requires_grad_(True)
    valid = valid_pixels(labels, t if ignore_incorrect else None)
    assert 0 < valid.sum() < 24
    ref_options = dict(options)
    ref_options['per_image'] = ref_options.pop('per_image_intra', False)
    ref = 0.7 * reference_loss(name, x, t, labels, valid, **ref_options)
    assert_matches(got, (ref.detach(), torch.autograd.grad(ref, x)[0]))


@pytest.mark.parametrize('use_fused', [False, True])
@pytest.mark.parametrize('name', MEMBERS)
@pytest.mark.parametrize('kl_type', ['forward', 'reverse', 'both'])
def test_kl_type_matches_reference(kl_type, name, use_fused):
    check_member(name, use_fused, 20, dict(kl_type=kl_type))


@pytest.mark.parametrize('use_fused', [False, True])
@pytest.mark.parametrize('name', MEMBERS)
def test_intra_weight_matches_reference(name, use_fused):
    check_member(name, use_fused, 21, dict(intra_weight=0.8))
    check_member(name, use_fused, 22, dict(intra_weight=2.0,
                                           per_image_intra=True))


@pytest.mark.parametrize('use_fused', [False, True])
@pytest.mark.parametrize('name', MEMBERS)
def test_entropy_weight_matches_reference(name, use_fused):
    check_member(name, use_fused, 23, dict(entropy_weight=0.3))


@pytest.mark.parametrize('use_fused', [False, True])
@pytest.mark.parametrize('name', MEMBERS)
def test_ignore_incorrect_matches_reference(name, use_fused):
    check_member(name, use_fused, 24, dict(), ignore_incorrect=True)
    check_member(name, use_fused, 25,
                 dict(intra_weight=0.5, kl_type='both',
                      entropy_weight=0.1), ignore_incorrect=True)


def test_dist_ignore_incorrect_matches_reference():
    s, t, labels = case(26)
    labels[0] = t.argmax(1)[0]  # image 0: correct where not void
    got = value_and_grad(DISTLoss(ignore_incorrect=True, temperature=2.0),
                         s, t, labels)
    x = s.clone().requires_grad_(True)
    ref = dist(x, t, valid_pixels(labels, t), 2.0, 1.0, 1.0, False)
    assert_matches(got, (ref.detach(), torch.autograd.grad(ref, x)[0]))


def test_ignore_incorrect_with_ignore_index_none_and_its_errors():
    s, t, labels = case(27)
    labels[labels == 255] = 0
    loss = GDKDLoss(ignore_incorrect=True, ignore_index=None)
    want = GDKDLoss()(s, t, torch.where(
        t.argmax(1) == labels, labels, 255))
    assert loss(s, t, labels).item() == pytest.approx(want.item(),
                                                      rel=1e-12)
    with pytest.raises(ValueError, match='ignore_incorrect=True compares'):
        loss(s, t)
    labels[0, 0, 0] = 255  # void, but ignore_index=None: no label
    with pytest.raises(ValueError, match=r'labels must be in \[0, 7\)'):
        loss(s, t, labels)


@pytest.mark.parametrize('use_fused', [False, True])
@pytest.mark.parametrize('options', [
    dict(intra_weight=1.0, per_image_intra=True), dict(entropy_weight=0.5),
    dict(kl_type='both'), dict(ignore_incorrect=True)])
def test_options_keep_the_nan_rule(options, use_fused):
    """A non-finite logit at an ignored pixel changes nothing (0 gradient
    there); at a valid pixel the loss is NaN."""
    s, t, labels = case(31)
    labels[0, 0, 0], labels[1, 2, 3] = 255, int(t[1, :, 2, 3].argmax())
    loss_fn = GDKDLoss(use_fused=use_fused, **options)
    clean = loss_fn(s, t, labels)
    s[0, :, 0, 0] = math.inf
    t[0, 2, 0, 0] = math.nan
    x = s.clone().requires_grad_(True)
    loss = loss_fn(x, t, labels)
    grad, = torch.autograd.grad(loss, x)
    assert loss.item() == pytest.approx(clean.item(), rel=1e-12)
    assert torch.all(grad[0, :, 0, 0] == 0) and torch.isfinite(grad).all()
    s[1, 4, 2, 3] = -math.inf  # a valid pixel
    assert math.isnan(loss_fn(s, t, labels))


def test_ignore_incorrect_keeps_a_non_finite_teacher_row_nan():
    s, t, labels = case(28)
    t[0, :, 0, 0] = math.nan
    labels[0, 0, 0] = 1
    for loss in (GDKDLoss(ignore_incorrect=True),
                 DISTLoss(ignore_incorrect=True)):
        assert math.isnan(loss(s, t, labels))


# --------------------------------------------- options off: bit-identical


@pytest.mark.parametrize('name', MEMBERS)
def test_options_off_are_bit_identical_to_the_core(name, monkeypatch):
    """With intra_weight=0 and entropy_weight=0 (the defaults) neither extra
    term runs: the module returns exactly its core's value and gradient."""
    def refuse(*args, **kwargs):
        raise AssertionError('an option that is off ran')

    monkeypatch.setattr(distill_losses.relation, 'intra_loss', refuse)
    monkeypatch.setattr(distill_losses.functional, 'entropy_loss', refuse)
    cls, kwargs, *_ = MEMBERS[name]
    s, t, labels = case(29, c=19)
    s, t = s.float(), t.float()
    for use_fused in (True, False):
        loss_fn = cls(use_fused=use_fused, intra_weight=0.0,
                      entropy_weight=0.0, loss_weight=0.7, **kwargs)
        got = value_and_grad(loss_fn, s, t, labels)
        x = s.clone().requires_grad_(True)
        rows = labels.reshape(-1)
        core = fused_partitioned_kl(x, t, loss_fn.spec, rows, 255, 0.7) \
            if use_fused else \
            0.7 * functional.plain_loss(x, t, loss_fn.spec, rows)
        grad, = torch.autograd.grad(core, x)
        assert torch.equal(got[0], core.detach())
        assert torch.equal(got[1], grad)
        assert loss_fn.spec == cls(**kwargs).spec


# ------------------------------------------------------------ checks


@pytest.mark.parametrize('cls,kwargs,error,match', [
    (GDKDLoss, dict(intra_weight=-1.0), ValueError, 'intra_weight'),
    (KDLoss, dict(intra_weight='1'), TypeError, 'intra_weight'),
    (DKDLoss, dict(entropy_weight=math.nan), ValueError, 'entropy_weight'),
    (GDKD3Loss, dict(kl_type='symmetric'), ValueError, 'kl_type'),
    (GDKDLoss, dict(per_image_intra=1), TypeError, 'per_image_intra'),
    (KDLoss, dict(ignore_incorrect='yes'), TypeError, 'ignore_incorrect'),
    (GDKDLoss, dict(intra_weight=1.0, reduction='none'), ValueError,
     'intra_weight > 0 needs'),
    (DISTLoss, dict(beta=-0.5), ValueError, 'beta'),
    (DISTLoss, dict(gamma=math.inf), ValueError, 'gamma'),
    (DISTLoss, dict(temperature=0.0), ValueError, 'temperature'),
    (DISTLoss, dict(temperature=math.nan), ValueError, 'temperature'),
    (DISTLoss, dict(per_image_intra='no'), TypeError, 'per_image_intra'),
    (DISTLoss, dict(loss_name='dist'), ValueError, 'loss_'),
    (DISTLoss, dict(temperature=1e9), ValueError,
     r'temperature must be in \[0\.0001, 100\]'),
    (DISTLoss, dict(temperature=1e-5), ValueError, 'temperature must be in'),
    (GDKDLoss, dict(w2=True), ValueError, 'leaf weight of group 1'),
    (GDKD3Loss, dict(w1='1'), ValueError, 'leaf weight of group 0'),
    (KDLoss, dict(ignore_index='255'), TypeError,
     "ignore_index must be an int or None, got '255'"),
    (DKDLoss, dict(ignore_index=255.0), TypeError, 'ignore_index'),
    (KDLoss, dict(loss_name=3), TypeError, 'loss_name must be a str, got 3'),
])
def test_bad_options_raise_naming_the_parameter(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)


def test_triton_kernels_refuse_reverse_kl_and_the_torch_path_takes_it():
    fused_triton = pytest.importorskip('gdkd_seg.losses.fused_triton')
    spec = GDKDLoss(kl_type='reverse').spec
    assert 'forward within-group KL only' in fused_triton.limit_error(
        'tile', spec, 19)
    assert fused_triton.limit_error('tile', GDKDLoss().spec, 19) is None
    # No kernel is a candidate, so the Triton backend runs the torch path
    # (no GPU needed to see it); naming a kernel raises.
    s, t, labels = case(30, c=19)
    s, t = s.float(), t.float()
    want = fused_partitioned_kl(s, t, spec, labels, backend='torch')
    got = fused_partitioned_kl(s, t, spec, labels, backend='triton')
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match='forward within-group KL only'):
        fused_partitioned_kl(s, t, spec, labels, backend='triton',
                             config=('tile', ))


def test_registry_builds_dist_with_the_official_defaults():
    from mmseg.registry import MODELS
    loss = MODELS.build(dict(type='DISTLoss'))
    assert isinstance(loss, DISTLoss) and loss.loss_name == 'loss_dist'
    assert (loss.temperature, loss.beta, loss.gamma, loss.per_image_intra,
            loss.ignore_index) == (1.0, 1.0, 1.0, False, 255)
