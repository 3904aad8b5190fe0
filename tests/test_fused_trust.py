"""The fused path never hides a bad number: non-finite logits, labels that
are no class, empty batches, and a kernel that computes a wrong result on
its first call (checked against the plain path)."""
import re
import warnings

import pytest
import torch

import gdkd_seg  # noqa: F401
from gdkd_seg.losses import fused
from gdkd_seg.losses import functional
from gdkd_seg.losses.fused import fused_partitioned_kl
from test_fused import (BACKEND_LAYOUTS, BACKENDS, DEVICE, LOSSES,
                        assert_paths_match_oracle, backend_args, build,
                        make_case, paths_and_oracle)

TRITON = [b for b in BACKENDS if b != 'torch']
# Triton's CPU interpreter computes masked lanes too (padding, -inf
# logits) and numpy warns about their overflows; the results mask them.
pytestmark = pytest.mark.filterwarnings(
    'ignore:.*encountered in:RuntimeWarning')


@pytest.fixture(autouse=True)
def no_pending_label_checks():
    """Each test starts and ends without label checks of other calls."""
    fused._PENDING.raise_ready(wait=True)
    yield
    fused._PENDING._queue.clear()


def fused_loss_and_grad(name, s, t, labels, backend, **kw):
    spec = build(name, **kw).spec
    x = s.detach().clone().requires_grad_(True)
    loss = fused_partitioned_kl(x, t, spec, labels, **backend_args(backend))
    grad, = torch.autograd.grad(loss, x)
    return loss, grad


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('name', list(LOSSES))
def test_non_finite_logits_at_ignored_pixels_change_nothing(backend, name):
    s, t, labels = make_case(30)
    ignored = (labels == 255).nonzero()
    assert len(ignored) >= 6
    for (b, h, w), (x, value) in zip(ignored, [
            (s, float('nan')), (t, float('nan')), (s, float('inf')),
            (t, float('inf')), (s, -float('inf')), (t, -float('inf'))]):
        x[b, (b + h + w) % 19, h, w] = value
    loss, grad = fused_loss_and_grad(name, s, t, labels, backend)
    # The plain path and the oracle on the same batch with the ignored
    # pixels zeroed.
    mask = (labels != 255)[:, None]
    clean_s, clean_t = (torch.where(mask, x, 0.) for x in (s, t))
    plain, _, exact = paths_and_oracle(name, clean_s, clean_t, labels,
                                       backend, loss_weight=1.0)
    assert_paths_match_oracle(plain, (loss, grad), exact)
    assert torch.count_nonzero(grad * ~mask) == 0


# Each loss gets non-finite logits of two kinds at a valid pixel: all six
# (student or teacher; nan, +inf or -inf) appear once over the four losses.
NON_FINITE = {
    'kd': [('teacher', float('nan')), ('student', -float('inf'))],
    'dkd': [('student', float('nan')), ('teacher', -float('inf'))],
    'gdkd': [('teacher', float('inf')), ('teacher', -float('inf'))],
    'gdkd3': [('student', float('inf')), ('student', -float('inf'))],
}


@pytest.mark.parametrize('backend, layout', BACKEND_LAYOUTS)
@pytest.mark.parametrize('name', list(LOSSES))
def test_non_finite_logit_at_a_valid_pixel_gives_nan(backend, layout, name):
    # Once the default (fused) path returned a finite loss over a NaN
    # gradient here: training logged a finite loss while the step wrote NaN
    # into the weights.
    shape = (2, 19, 5, 7) if layout == 'map' else (37, 19)
    for i, (which, value) in enumerate(NON_FINITE[name]):
        s, t, labels = make_case(31 + i, shape)
        rows = labels.reshape(-1)
        row = int((rows != 255).nonzero()[i])
        x = s if which == 'student' else t
        if layout == 'map':
            b, p = divmod(row, 35)
            x[b, 3, p // 7, p % 7] = value
        else:
            x[row, 3] = value
        loss, grad = fused_loss_and_grad(name, s, t, labels, backend)
        assert torch.isnan(loss), (which, value, loss)
        assert grad.shape == s.shape


@pytest.mark.parametrize('backend', BACKENDS)
def test_empty_batch_gives_zero_with_zero_gradient(backend):
    for shape in ((0, 19, 5, 7), (2, 19, 0, 7), (0, 19)):
        s, t, labels = make_case(40, shape)
        for name in ('gdkd', 'dkd'):
            loss, grad = fused_loss_and_grad(name, s, t, labels, backend)
            assert loss.item() == 0 and loss.dtype == torch.float32
            assert grad.shape == s.shape


@pytest.mark.parametrize('backend', BACKENDS)
def test_ignore_index_none_keeps_every_row(backend):
    s, t, labels = make_case(41)
    labels[labels == 255] = 4
    x = s.clone().requires_grad_(True)
    # Labels skip no row: GDKD is its mean over every row, DKD reads them.
    for name in ('gdkd', 'dkd'):
        spec = build(name).spec
        loss = fused_partitioned_kl(x, t, spec, labels, ignore_index=None,
                                    **backend_args(backend))
        torch.testing.assert_close(
            loss, functional.plain_loss(s, t, spec, labels.reshape(-1), None))
        if name == 'gdkd':
            torch.testing.assert_close(loss, functional.plain_loss(s, t, spec))
    # Every label must then name a class (as on the plain path).
    labels[0, 0, 0] = 255
    with pytest.raises(ValueError, match=r'\[0, 19\).*255'):
        fused_partitioned_kl(x, t, spec, labels, ignore_index=None,
                             **backend_args(backend))
        fused.check_labels_now()  # CUDA labels: checked on the device


def bad_labels(seed=42):
    s, t, labels = make_case(seed)
    labels[0, 0, :2] = 100  # valid pixels whose label is no class
    labels[1, 2, 3] = -3
    return s, t, labels


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('name', ['dkd', 'gdkd'])
def test_labels_outside_the_classes_raise(backend, name):
    # Labels on the host are checked before computing, on either path (CUDA
    # labels on the Triton path by the kernel, reported later).
    s, t, labels = bad_labels()
    with pytest.raises(ValueError,
                       match=r'\[0, 19\).*3 pixels.*-3(, | to )100'):
        fused_loss_and_grad(name, s, t, labels, backend)
        fused.check_labels_now()


@pytest.mark.skipif(not TRITON, reason='needs a Triton run')
def test_labels_checked_on_the_device_raise_later(monkeypatch):
    # The kernels count bad labels without a host sync (the default for
    # CUDA labels; forced here on CPU tensors under the interpreter): the
    # error comes at the end of backward, or at the next call once the
    # counts have reached the host.
    monkeypatch.setenv(fused.LABEL_CHECK_ENV, 'device')
    monkeypatch.setattr(fused, '_PATHS', {})  # a first call: verified
    s, t, labels = bad_labels()
    spec = build('dkd').spec
    x = s.clone().requires_grad_(True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        loss = fused_partitioned_kl(x, t, spec, labels, backend='triton')
    # The verification compares rows with class labels only: the bad
    # labels are the data's fault, not the kernel's.
    assert not [w for w in caught if 'Triton kernel' in str(w.message)]
    with pytest.raises(ValueError, match=r'\[0, 19\).*3 pixels.*-3 to 100'):
        loss.backward()
        fused.check_labels_now()  # CUDA: the copy may still be on its way
    with torch.no_grad():
        fused_partitioned_kl(s, t, spec, labels, backend='triton')
    if DEVICE == 'cuda':
        torch.cuda.synchronize()
    good = make_case(43)[2]
    with pytest.raises(ValueError, match='-3 to 100'):
        fused_partitioned_kl(s, t, spec, good, backend='triton')
    fused_partitioned_kl(s, t, spec, good, backend='triton')  # all read
    with torch.no_grad():
        fused_partitioned_kl(s, t, spec, labels, backend='triton')
    with pytest.raises(ValueError, match='-3 to 100'):
        fused.check_labels_now()
    # 'sync' raises in the call itself; an unknown mode is refused.
    monkeypatch.setenv(fused.LABEL_CHECK_ENV, 'sync')
    with pytest.raises(ValueError, match='-3, 100'):
        fused_partitioned_kl(s, t, spec, labels, backend='triton')
    monkeypatch.setenv(fused.LABEL_CHECK_ENV, 'later')
    with pytest.raises(ValueError, match=fused.LABEL_CHECK_ENV):
        fused_partitioned_kl(s, t, spec, good, backend='triton')


@pytest.mark.skipif('triton' not in BACKENDS, reason='needs a Triton run')
def test_wrong_kernel_result_is_caught_on_first_use(monkeypatch):
    # A class-loop kernel whose loss is 1.5x too large: its first call is
    # compared with the plain path, warns with both figures and hands the
    # signature to the tile kernel for good (no second comparison).
    from gdkd_seg.losses import fused_triton
    real = fused_triton._class_loop_kernel

    class Wrong:
        calls = 0

        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                Wrong.calls += 1
                real[grid](*args, **kwargs)
                args[7].mul_(1.5)  # the loss
            return launch

    monkeypatch.setattr(fused, '_PATHS', {})
    monkeypatch.setattr(fused_triton, '_class_loop_kernel', Wrong())
    s, t, labels = make_case(44)
    spec = build('gdkd').spec
    with torch.no_grad():
        expected = functional.plain_loss(s, t, spec, labels.reshape(-1))
    with pytest.warns(UserWarning) as caught:
        loss, grad = fused_loss_and_grad('gdkd', s, t, labels, 'triton')
    message, = [str(w.message) for w in caught
                if 'disagrees with the plain path' in str(w.message)]
    kernel_loss, plain_loss = (float(v) for v in re.search(
        r'loss (\S+) vs (\S+) ', message).groups())
    assert 'class_loop' in message and 'using the tile kernel' in message
    assert kernel_loss == pytest.approx(1.5 * plain_loss, rel=1e-5)
    torch.testing.assert_close(loss, expected)
    assert Wrong.calls == 1
    loss, _ = fused_loss_and_grad('gdkd', s, t, labels, 'triton')
    torch.testing.assert_close(loss, expected)
    assert Wrong.calls == 1
    # Named in the config, the wrong kernel raises instead.
    with pytest.raises(RuntimeError, match='disagrees with the plain path'):
        fused_partitioned_kl(s, t, spec, labels, backend='triton',
                             config=('class_loop', ))


@pytest.mark.skipif(DEVICE != 'cuda', reason='needs CUDA')
@pytest.mark.gpu
def test_gpu_trust():
    # On CUDA: the kernels' NaN rule and the device label check (deferred,
    # one asynchronous copy, no sync in the call).
    s, t, labels = make_case(45, (2, 19, 64, 128))
    s[1, 3, 5, 5] = float('nan')
    labels[1, 5, 5] = 0
    for backend in BACKENDS:
        loss, _ = fused_loss_and_grad('gdkd', s, t, labels, backend)
        assert torch.isnan(loss)
    s, t, labels = bad_labels()
    loss, _ = fused_loss_and_grad('dkd', s, t, labels, 'triton')
    with pytest.raises(ValueError, match='-3 to 100'):
        fused.check_labels_now()
