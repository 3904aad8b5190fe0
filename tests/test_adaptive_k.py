"""Adaptive k (the smallest teacher top-k holding a share tau of its mass)
against an exact per-row reference, its edge cases, and GDKDLoss(k='adaptive')
against GDKD with each row's own k."""
import numpy as np
import pytest
import torch

from gdkd_seg.losses import GDKD3Loss, GDKDLoss
from gdkd_seg.losses import functional, partition
from reference import adaptive_k_row, gdkd_row, gdkd_row_grad


def random_rows(seed, n=64, c=19, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=torch.float64) * scale


@pytest.mark.parametrize('tau,T,max_k', [(0.5, 1.0, None), (0.9, 1.0, None),
                                         (0.99, 2.0, None), (0.9, 0.5, 4),
                                         (0.75, 4.0, 1)])
def test_adaptive_k_matches_exact_reference(tau, T, max_k):
    t = random_rows(0)
    got = functional.adaptive_k(t.float(), tau, T, max_k)
    want = [adaptive_k_row(row, tau, T, max_k) for row in t.numpy()]
    assert got.dtype == torch.int64
    assert got.tolist() == want
    assert len(set(want)) > 1 or max_k == 1  # the case exercises several k


def test_adaptive_k_is_monotone_in_tau():
    t = random_rows(1, n=256)
    ks = torch.stack([functional.adaptive_k(t, tau) for tau in
                      np.linspace(0, 1, 21)])
    assert (ks.diff(dim=0) >= 0).all()
    assert (ks[0] == 1).all() and (ks[-1] == t.shape[1]).all()


def test_tau_edges():
    t = torch.tensor([[5.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0],
                      [0.0, -800.0, -2.0, -900.0]])
    assert functional.adaptive_k(t, 0.0).tolist() == [1, 1, 1]
    assert functional.adaptive_k(t, 1e-9).tolist() == [1, 1, 1]
    # tau = 1: every class of nonzero (float64) mass; logits 800 below the
    # max have none.
    assert functional.adaptive_k(t, 1.0).tolist() == [4, 4, 2]
    # A uniform row needs ceil(tau * C) classes; max_k caps.
    assert functional.adaptive_k(t[1:2], 0.6).tolist() == [3]
    assert functional.adaptive_k(t, 1.0, max_k=3).tolist() == [3, 3, 2]
    # A confident teacher gets k = 1 even for a high tau.
    confident = torch.tensor([[12.0, 0.0, 0.0]])
    assert functional.adaptive_k(confident, 0.999).item() == 1


def test_ties_fill_the_top_group_from_the_lowest_index():
    t = torch.tensor([[0.0, 3.0, 1.0, 3.0, 3.0]])
    k = functional.adaptive_k(t, 0.5)  # each tied class holds ~0.31
    assert k.tolist() == [2]
    spec = partition.gdkd(k=partition.AdaptiveCut(0.5, None), w0=1.0,
                          w1=1.0, w2=1.0, temperature=1.0)
    group = functional.group_index(spec, t, row_k=k)
    assert group[0].tolist() == [1, 0, 1, 0, 1]
    assert torch.equal(functional.group_index(spec, t), group)


def test_per_row_k_is_range_checked():
    t = random_rows(2, n=3, c=5)
    with pytest.raises(ValueError, match='mass'):
        functional.adaptive_k(t, 1.5)
    with pytest.raises(ValueError, match='max_k'):
        functional.adaptive_k(t, 0.9, max_k=6)


@pytest.mark.parametrize('tau,T,max_k,c,scale', [
    (0.9, 1.0, None, 19, 3.0), (0.8, 2.0, 6, 19, 3.0),
    (0.99, 1.0, None, 40, 0.3),  # k up to 40: ranked by a stable sort
])
def test_adaptive_loss_is_gdkd_with_each_rows_k(tau, T, max_k, c, scale):
    g = torch.Generator().manual_seed(3)
    s = torch.randn(2, c, 4, 5, generator=g) * 3
    t = torch.randn(2, c, 4, 5, generator=g) * scale
    labels = torch.randint(0, c, (2, 4, 5), generator=g)
    labels[0, 0] = 255
    s.requires_grad_(True)
    loss = GDKDLoss(k='adaptive', adaptive_mass=tau, max_k=max_k,
                    temperature=T, w0=1.0, w1=2.0, w2=8.0)(s, t, labels)
    loss.backward()

    def rows(x):
        return x.detach().permute(0, 2, 3, 1).reshape(-1, c).double().numpy()

    sr, tr = rows(s), rows(t)
    valid = labels.reshape(-1).numpy() != 255
    ks = [adaptive_k_row(row, tau, T, max_k) for row in tr]
    assert len(set(ks)) > 1 and (c < 40 or max(ks) > 32)
    want = np.mean([gdkd_row(sr[i], tr[i], ks[i], 1.0, 2.0, 8.0, T)
                    for i in np.flatnonzero(valid)])
    assert loss.item() == pytest.approx(want, rel=2e-5)
    want_grad = np.stack([
        gdkd_row_grad(sr[i], tr[i], ks[i], 1.0, 2.0, 8.0, T) * valid[i]
        for i in range(len(sr))]) / valid.sum()
    np.testing.assert_allclose(rows(s.grad), want_grad, rtol=1e-4,
                               atol=1e-7)


def test_adaptive_option_is_checked():
    with pytest.raises(ValueError, match="'adaptive'"):
        GDKDLoss(k='auto')
    with pytest.raises(ValueError, match='adaptive mass must be in'):
        GDKDLoss(k='adaptive', adaptive_mass=2.0)
    with pytest.raises(ValueError, match='GDKD3'):
        GDKD3Loss(k='adaptive')
