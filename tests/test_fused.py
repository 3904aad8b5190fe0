"""The plain and the fused loss-and-gradient paths both equal the
independent float64 oracle of tests/reference.py (values and gradients) for
every partition, layout, dtype and masking case; the oracle groups the
classes by its own sort, so a grouping bug shared by the paths fails here.
The Triton kernels are checked too, in Triton's CPU interpreter when there
is no GPU."""
import os
import re

import numpy as np
import pytest
import torch

import gdkd_seg  # noqa: F401
from gdkd_seg.losses import DKDLoss, GDKD3Loss, GDKDLoss, KDLoss
from gdkd_seg.losses import fused_torch
from gdkd_seg.losses import partition
from gdkd_seg.losses.fused import fused_partitioned_kl, triton_available
from reference import (adaptive_k_row, cut_groups, exact_partition_row,
                       label_groups, partition_row_grad, partition_row_loss)

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
# Triton's CPU interpreter computes masked lanes too (padding, -inf
# logits) and numpy warns about their overflows; the results mask them.
pytestmark = pytest.mark.filterwarnings(
    'ignore:.*encountered in:RuntimeWarning')
# 'triton' picks its kernel (thread-per-pixel for maps, class tiles for
# rows); 'triton-tile' forces the class-tile kernel on maps too.
BACKENDS = ['torch']
if triton_available() and (DEVICE == 'cuda'
                           or os.environ.get('TRITON_INTERPRET') == '1'):
    BACKENDS += ['triton', 'triton-tile']


def backend_args(backend):
    """``fused_partitioned_kl`` keywords for a BACKENDS entry."""
    if backend == 'triton-tile':
        return dict(backend='triton', config=('tile', ))
    return dict(backend=backend)


LOSSES = {
    'kd': (KDLoss, dict(temperature=2.0)),
    'dkd': (DKDLoss, dict(alpha=1.5, beta=4.0, temperature=1.5)),
    'gdkd': (GDKDLoss, dict(k=3, w0=1.0, w1=2.0, w2=3.0, temperature=4.0)),
    'gdkd3': (GDKD3Loss, dict(k=4, w0=0.5, w1=1.0, w2=2.0, temperature=1.0)),
}


def build(name, **kw):
    cls, defaults = LOSSES[name]
    return cls(**dict(defaults, **kw))


def make_case(seed, shape=(2, 19, 5, 7), scale=3.0, ignore=0.2,
              dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(shape, generator=g) * scale
    t = torch.randn(shape, generator=g) * scale
    c = shape[1]
    label_shape = (shape[0], ) + tuple(shape[2:])
    labels = torch.randint(0, c, label_shape, generator=g)
    labels[torch.rand(label_shape, generator=g) < ignore] = 255
    return (s.to(DEVICE, dtype), t.to(DEVICE, dtype), labels.to(DEVICE))


def documented_partition(name, kw):
    """The groups and weights that a loss's arguments define, written out
    from docs/method.md's table: a function of a teacher row and its label
    giving each class's group (by reference.py's own sort), the group
    weight, the leaf weights and T."""
    T = kw['temperature']
    if name == 'kd':
        return (lambda t, label: cut_groups(t, ())), 0.0, [1.0], T
    if name == 'dkd':
        return (lambda t, label: label_groups(len(t), label)), kw['alpha'], \
            [0.0, kw['beta']], T
    k = kw['k']
    if name == 'gdkd3':
        cuts, leaves = (1, k), [kw['w1'], kw['w1'], kw['w2']]
    elif k == 'adaptive':
        mass = kw.get('adaptive_mass', 0.9)  # the documented default

        def groups(t, label):
            return cut_groups(t, (adaptive_k_row(t, mass, T, kw.get('max_k')),
                                  ))
        return groups, kw['w0'], [kw['w1'], kw['w2']], T
    else:
        cuts = (k, ) if isinstance(k, int) else tuple(k)
        leaves = kw.get('leaf_weights') or \
            [kw['w1']] * len(cuts) + [kw['w2']]
    return (lambda t, label: cut_groups(t, cuts)), kw['w0'], list(leaves), T


def as_rows(x):
    """``(N, C)`` or ``(B, C, H, W)`` -> float64 numpy ``(rows, C)``."""
    x = x.detach().double().cpu()
    if x.dim() > 2:
        x = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    return x.numpy()


def oracle(name, s, t, labels, loss_weight, exact=False, **kw):
    """Loss and student gradient from tests/reference.py in float64 (in
    50-digit arithmetic with ``exact``), on the same rounded inputs."""
    kw = dict(LOSSES[name][1], **kw)
    groups_of, w_group, leaves, T = documented_partition(name, kw)
    sr, tr = as_rows(s), as_rows(t)
    lr = np.full(len(sr), -1) if labels is None else \
        labels.reshape(-1).cpu().numpy()
    valid = lr != 255
    grad = np.zeros_like(sr)
    total = 0.0
    for i in np.flatnonzero(valid):
        groups = groups_of(tr[i], lr[i])
        if exact:
            row, grad[i] = exact_partition_row(sr[i], tr[i], groups, w_group,
                                               leaves, T)
        else:
            row = partition_row_loss(sr[i], tr[i], groups, w_group, leaves, T)
            grad[i] = partition_row_grad(sr[i], tr[i], groups, w_group,
                                         leaves, T)
        total += row
    scale = loss_weight / (max(valid.sum(), 1)
                           if kw.get('reduction', 'mean') == 'mean' else 1)
    grad = torch.from_numpy(grad * scale)
    if s.dim() > 2:
        b, c, h, w = s.shape
        grad = grad.reshape(b, h, w, c).permute(0, 3, 1, 2)
    return torch.tensor(total * scale, dtype=torch.float64), grad


def paths_and_oracle(name, s, t, labels, backend, loss_weight=0.7,
                     exact=False, **kw):
    """Loss and student gradient from the plain module, the fused path and
    the independent float64 oracle."""
    results = []
    for use_fused in (False, True):
        loss_fn = build(name, loss_weight=loss_weight, use_fused=use_fused,
                        **kw)
        x = s.detach().clone().requires_grad_(True)
        if use_fused:
            loss = fused_partitioned_kl(
                x, t, loss_fn.spec, labels, loss_fn.ignore_index, loss_weight,
                loss_fn.reduction, **backend_args(backend))
        else:
            loss = loss_fn(x, t, labels)
        grad, = torch.autograd.grad(loss, x)
        results.append((loss, grad))
    results.append(oracle(name, s, t, labels, loss_weight, exact, **kw))
    return results


def check_paths(*args, **kw):
    assert_paths_match_oracle(*paths_and_oracle(*args, **kw))


# Backend and layout pairs: on rows 'triton' already runs the tile kernel.
BACKEND_LAYOUTS = [(b, layout) for b in BACKENDS for layout in ('map', 'rows')
                   if (b, layout) != ('triton-tile', 'rows')]


def assert_paths_match_oracle(plain, fast, exact, rtol=1e-5, grad_rtol=1e-4):
    """Both paths equal the oracle to float32 rounding (the fused gradient
    is rounded once more to the input dtype: ``grad_rtol``)."""
    (loss_p, grad_p), (loss_f, grad_f) = plain, fast
    assert loss_f.dtype == loss_p.dtype
    assert grad_f.dtype == grad_p.dtype and grad_f.shape == grad_p.shape
    loss_want, grad_want = exact
    scale = grad_want.abs().max().item()
    for loss, grad in (plain, fast):
        torch.testing.assert_close(loss.double().cpu(), loss_want,
                                   rtol=rtol, atol=1e-6)
        torch.testing.assert_close(grad.double().cpu(), grad_want,
                                   rtol=grad_rtol, atol=grad_rtol * scale)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('name', list(LOSSES))
@pytest.mark.parametrize('layout', ['map', 'rows'])
def test_fused_equals_plain(backend, name, layout):
    shape = (2, 19, 5, 7) if layout == 'map' else (37, 19)
    s, t, labels = make_case(1, shape)
    check_paths(name, s, t, labels, backend)


@pytest.mark.parametrize('backend', BACKENDS)
def test_many_classes_and_no_labels(backend):
    s, t, _ = make_case(2, (1, 150, 4, 5))
    check_paths('gdkd', s, t, None, backend)
    s, t, _ = make_case(3, (6, 1000))
    check_paths('gdkd', s, t, None, backend, k=5)


@pytest.mark.parametrize('backend', BACKENDS)
def test_non_contiguous_inputs(backend):
    s, t, labels = make_case(4, (2, 19, 6, 5))
    maps = (s.contiguous(memory_format=torch.channels_last),
            t[:, :, :, :].transpose(2, 3).contiguous().transpose(2, 3))
    check_paths('gdkd3', maps[0], maps[1], labels, backend)
    rows_s, rows_t, row_labels = make_case(5, (40, 19))
    transposed = [x.t().contiguous().t() for x in (rows_s, rows_t)]
    assert transposed[0].stride() == (1, 40)
    check_paths('dkd', *transposed, row_labels, backend)
    check_paths(
        'gdkd', s[:, :, 1:5, ::2], t[:, :, 1:5, ::2], labels[:, 1:5, ::2],
        backend)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_inputs(backend, dtype):
    s, t, labels = make_case(6, dtype=dtype)
    plain, fast, exact = paths_and_oracle('gdkd', s, t, labels, backend)
    # float32 math on the rounded inputs; the fused gradient is rounded to
    # the input dtype once.
    assert fast[1].dtype == dtype
    eps = torch.finfo(dtype).eps
    assert_paths_match_oracle(plain, fast, exact, grad_rtol=eps)


@pytest.mark.parametrize('backend', BACKENDS)
def test_mixed_dtypes_bf16_teacher(backend):
    s, t, labels = make_case(7)
    check_paths('gdkd', s, t.bfloat16(), labels, backend)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('name', list(LOSSES))
def test_all_ignored_gives_zero_and_zero_gradient(backend, name):
    s, t, labels = make_case(8)
    labels.fill_(255)
    _, (loss, grad), _ = paths_and_oracle(name, s, t, labels, backend)
    assert loss.item() == 0.0
    assert torch.count_nonzero(grad) == 0


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('name', ['gdkd', 'gdkd3', 'dkd', 'kd'])
def test_extreme_spread_and_underflowing_groups(backend, name):
    # A spread of 2e4 between groups at T=2: masses underflow to 0 in fp32;
    # the official -1000 mask code is wrong or NaN here, both paths are
    # not. Masses underflow float64 too: the oracle computes in 50 digits.
    s, t, labels = make_case(9, scale=1.0)
    s[:, :4] += 2e4
    t[:, 5:9] -= 2e4
    t[:, 0] += 1e4
    plain, fast, exact = paths_and_oracle(name, s, t, labels, backend,
                                          exact=True, temperature=2.0)
    assert torch.isfinite(fast[0]) and torch.isfinite(fast[1]).all()
    assert_paths_match_oracle(plain, fast, exact)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('name', ['gdkd', 'gdkd3'])
@pytest.mark.parametrize('shape', [(2, 19, 5, 7), (70, 19)])
def test_ties_at_the_kth_teacher_logit(backend, name, shape):
    s, t, labels = make_case(10, shape)
    # Many exact ties: teacher logits on a coarse grid.
    t = (t * 0.7).round()
    check_paths(name, s, t, labels, backend)


@pytest.mark.parametrize('backend', BACKENDS)
def test_k_equals_num_classes_empty_rest_group(backend):
    s, t, labels = make_case(11, (2, 5, 3, 3))
    check_paths('gdkd', s, t, labels, backend, k=5)
    check_paths('gdkd3', s, t, labels, backend, k=5)


@pytest.mark.parametrize('backend, layout', BACKEND_LAYOUTS)
def test_deeper_cuts_and_adaptive_cut(backend, layout):
    # A hierarchy of cut points (5 groups, one leaf weight each: the most
    # the kernels take, at the class loop's depth) and a per-row cut, on
    # every path.
    shape = (2, 19, 5, 7) if layout == 'map' else (37, 19)
    s, t, labels = make_case(20, shape)
    check_paths(
        'gdkd', s, t, labels, backend, k=(1, 3, 6, 8),
        leaf_weights=(0.5, 1.0, 1.5, 2.0, 3.0))
    check_paths(
        'gdkd', s, t, labels, backend, k='adaptive', adaptive_mass=0.8,
        max_k=6)


@pytest.mark.parametrize('backend', BACKENDS[:2])
def test_beyond_the_kernel_limits(backend):
    # Deeper than the class loop (the tile kernel takes it on maps) and more
    # groups than either kernel (the torch path takes it).
    s, t, labels = make_case(21, (1, 19, 3, 5))
    check_paths('gdkd', s, t, labels, backend, k=(2, 12))
    check_paths('gdkd', s, t, labels, backend, k=(1, 2, 3, 5, 8, 13))
    if backend == 'triton':
        with pytest.raises(ValueError, match='up to 5 groups, got 7'):
            fused_partitioned_kl(s, t, GDKDLoss(k=(1, 2, 3, 5, 8, 13)).spec,
                                 labels, backend='triton', config=('tile', ))


@pytest.mark.skipif(not triton_available(), reason='needs triton')
def test_triton_kernel_choice():
    from gdkd_seg.losses import fused_triton
    pick = fused_triton.pick_kernels
    gdkd = GDKDLoss().spec
    maps = torch.zeros(2, 19, 12)
    assert pick(maps, maps, maps, gdkd) == ('class_loop', 'tile')
    deepest_loop = GDKDLoss(k=(1, fused_triton.MAX_LOOP_DEPTH)).spec
    assert pick(maps, maps, None, deepest_loop) == ('class_loop', 'tile')
    deeper = GDKDLoss(k=(2, fused_triton.MAX_LOOP_DEPTH + 1)).spec
    assert pick(maps, maps, None, deeper) == ('tile', )
    adaptive = GDKDLoss(k='adaptive').spec  # depth: C = 19
    assert pick(maps, maps, None, adaptive) == ('tile', )
    many = torch.zeros(1, fused_triton.MAX_LOOP_CLASSES + 1, 12)
    assert pick(many, many, many, gdkd) == ('tile', )
    rows = torch.zeros(12, 19).t().unsqueeze(0)  # (N, C) as (1, C, N)
    assert pick(rows, rows, rows, gdkd) == ('tile', )
    channels_last = torch.zeros(2, 19, 3, 4).contiguous(
        memory_format=torch.channels_last).reshape(2, 19, 12)
    assert pick(channels_last, maps, maps, gdkd) == ('tile', )
    # Beyond the tile kernel's depth or either kernel's groups: torch path.
    wide = torch.zeros(1, 40, 12)
    too_deep = GDKDLoss(k=fused_triton.MAX_TILE_DEPTH + 1).spec
    assert pick(wide, wide, wide, too_deep) == ()
    too_many = GDKDLoss(k=tuple(range(1, fused_triton.MAX_GROUPS + 1))).spec
    assert too_many.num_groups == fused_triton.MAX_GROUPS + 1
    assert pick(maps, maps, maps, too_many) == ()


@pytest.mark.skipif('triton' not in BACKENDS, reason='needs a Triton run')
def test_class_loop_kernel_at_its_limits():
    # k = 8 fills every insertion slot at the largest class count the kernel
    # takes (k = 1: a single slot); a coarse grid of teacher logits ties at
    # the k-th.
    s, t, labels = make_case(14, (1, 32, 3, 5))
    t = (t * 0.7).round()
    for name, k in (('gdkd', 8), ('gdkd3', 8), ('gdkd', 1)):
        check_paths(name, s, t, labels, 'triton', k=k)
    with pytest.raises(ValueError, match='class_loop kernel takes up to'):
        fused_partitioned_kl(s, t, GDKDLoss(k=9).spec, labels,
                             backend='triton', config=('class_loop', ))
    with pytest.raises(ValueError, match="kernel must be one of"):
        fused_partitioned_kl(s, t, GDKDLoss().spec, labels,
                             backend='triton', config=('fast', ))


@pytest.mark.skipif('triton' not in BACKENDS, reason='needs a Triton run')
def test_kernel_compile_failure_falls_back(monkeypatch):
    # As with a Triton too old for the kernels' tuples: the first call of a
    # signature warns and runs the next kernel (or, when none compiles, the
    # torch path); later calls go straight to it; a kernel asked for by name
    # still raises.
    from gdkd_seg.losses import fused, fused_triton

    class Uncompilable:
        calls = 0

        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                Uncompilable.calls += 1
                raise RuntimeError('unsupported construct: tuple')
            return launch

    monkeypatch.setattr(fused, '_PATHS', {})
    monkeypatch.setattr(fused_triton, '_class_loop_kernel', Uncompilable())
    s, t, labels = make_case(16)
    with pytest.warns(UserWarning, match='class_loop Triton kernel failed '
                      '.* using the tile kernel'):
        fast = paths_and_oracle('gdkd', s, t, labels, 'triton')
    assert_paths_match_oracle(*fast)
    check_paths('gdkd', s, t, labels, 'triton')
    assert Uncompilable.calls == 1
    with pytest.raises(RuntimeError, match='unsupported construct'):
        fused_partitioned_kl(s, t, GDKDLoss().spec, labels,
                             backend='triton', config=('class_loop', ))
    monkeypatch.setattr(fused_triton, '_tile_kernel', Uncompilable())
    with pytest.warns(UserWarning) as caught:
        check_paths('gdkd3', s, t, labels, 'triton')
    messages = [str(w.message) for w in caught]
    assert any('class_loop Triton kernel failed' in m for m in messages)
    assert any(re.search('tile Triton kernel failed .* using the torch path',
                         m) for m in messages)
    assert Uncompilable.calls == 4  # class loop, then tile, for gdkd3


@pytest.mark.parametrize('backend', BACKENDS)
def test_sum_reduction_and_incoming_gradient(backend):
    s, t, labels = make_case(12)
    check_paths('gdkd', s, t, labels, backend, reduction='sum')
    # An incoming gradient other than 1 scales the stored gradient.
    part = partition.gdkd(k=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0)
    x = s.clone().requires_grad_(True)
    base, = torch.autograd.grad(
        fused_partitioned_kl(x, t, part, labels, **backend_args(backend)), x)
    (fused_partitioned_kl(x, t, part, labels, **backend_args(backend)) * -2.5
     ).backward()
    torch.testing.assert_close(x.grad, -2.5 * base)


@pytest.mark.parametrize('backend', BACKENDS)
def test_retained_graph_backward_twice(backend):
    s, t, labels = make_case(13)
    x = s.clone().requires_grad_(True)
    loss = GDKDLoss(k=2)(x, t, labels) if backend == 'torch' else \
        fused_partitioned_kl(
            x, t, partition.gdkd(k=2, w0=1., w1=1., w2=2., temperature=1.),
            labels, **backend_args(backend))
    first, = torch.autograd.grad(loss * 2.0, x, retain_graph=True)
    second, = torch.autograd.grad(loss, x)
    torch.testing.assert_close(first, 2.0 * second)


@pytest.mark.parametrize('kw', [
    dict(k=3), dict(k=(1, 3, 6)), dict(k=(2, 12)),
    dict(k='adaptive', adaptive_mass=0.7, max_k=6)])
@pytest.mark.parametrize('classes_contiguous', [False, True])
def test_torch_path_groups_follow_the_rank_rule(kw, classes_contiguous):
    # The torch path's float masks against reference.py's sort, on teacher
    # logits tied at every cut, in both chunk layouts (maps: pixels
    # contiguous; rows: classes contiguous, where topk is tried first).
    gen = torch.Generator().manual_seed(23)
    t = (torch.randn(19, 60, generator=gen) * 1.5).round()  # (C, L)
    if classes_contiguous:
        t = t.t().contiguous().t()
    spec = GDKDLoss(temperature=1.0, **kw).spec
    masks = fused_torch._group_masks(t, None, None, spec)
    got = sum(g * m for g, m in enumerate(masks)).t().numpy()
    groups_of = documented_partition(
        'gdkd', dict(LOSSES['gdkd'][1], temperature=1.0, **kw))[0]
    want = np.stack([groups_of(row, None) for row in t.t().double().numpy()])
    np.testing.assert_array_equal(got, want)


def test_torch_path_chunks_and_gradcheck(monkeypatch):
    # 7-pixel chunks
    monkeypatch.setattr(fused_torch, '_CHUNK_ELEMENTS', 7 * 19)
    s, t, labels = make_case(14)
    check_paths('gdkd3', s, t, labels, 'torch')
    check_paths('gdkd', s, t, labels, 'torch', k='adaptive',
                adaptive_mass=0.9, max_k=5)
    s, t, labels = make_case(15, (1, 6, 3, 3))
    x = s.double().requires_grad_(True)
    for name in LOSSES:
        loss_fn = build(name)
        assert torch.autograd.gradcheck(
            lambda v: loss_fn(v, t.double(), labels), (x, ))


def test_module_dispatch_and_fallbacks():
    s, t, labels = make_case(16)
    loss = GDKDLoss()
    assert loss.use_fused
    x = s.clone().requires_grad_(True)
    out = loss(x, t, labels)
    assert type(out.grad_fn).__name__ == 'FusedPartitionedKLBackward'
    rows = GDKDLoss(reduction='none')(x, t, labels)  # plain path
    assert rows.shape == (labels.numel(), )
    plain = GDKDLoss(use_fused=False)(x, t, labels)
    torch.testing.assert_close(out, plain)
    # Every spec takes the fused path: deeper cuts, a per-row cut.
    for k in ((1, 3, 6), 'adaptive'):
        out = GDKDLoss(k=k)(x, t, labels)
        assert type(out.grad_fn).__name__ == 'FusedPartitionedKLBackward'
    with pytest.raises(ValueError, match='labels'):
        fused_partitioned_kl(s, t, DKDLoss().spec)
    with pytest.raises(ValueError, match='k must be'):
        fused_partitioned_kl(s, t, GDKDLoss(k=20).spec)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.skipif(not triton_available(), reason='needs triton')
@pytest.mark.parametrize('name', list(LOSSES))
def test_gpu_kernel_at_segmentation_size(name):
    s, t, labels = make_case(17, (4, 19, 64, 128))
    check_paths(name, s, t, labels, 'triton')
    s, t, labels = make_case(18, (2, 150, 32, 64))
    check_paths(name, s, t, labels, 'triton')
    s, t, labels = make_case(19, (4096, 1000), ignore=0.0)
    check_paths(name, s, t, labels, 'triton')
    if name == 'gdkd':  # deeper cuts, per-row cut; class loop and tile
        s, t, labels = make_case(22, (4, 19, 64, 128))
        for k in ((1, 3, 6), (2, 12), 'adaptive'):
            check_paths(name, s, t, labels, 'triton', k=k, max_k=8)
    # Deterministic: the same inputs give bitwise the same loss.
    part = build(name).spec
    runs = {fused_partitioned_kl(s, t, part, labels).item() for _ in range(3)}
    assert len(runs) == 1
