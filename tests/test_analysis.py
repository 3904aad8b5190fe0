"""The analysis tools: gradient magnitudes against the closed form, the
teacher-distribution statistics and ECE on toys whose answer is known, and
both command-line tools end to end on tiny random models."""
import json
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from gdkd_seg.analysis import (GradientMagnitudes, TeacherDistribution,
                               expected_calibration_error)
from reference import softmax

LOSSES = {
    'KD': dict(type='KDLoss'),
    'DKD': dict(type='DKDLoss', alpha=1.0, beta=8.0),
    'GDKD': dict(type='GDKDLoss', k=3, w0=1.0, w1=1.0, w2=2.0),
}


def confident_rows(n=48, c=10, margin=12.0, seed=0):
    """A confident teacher (top-3 holds all but ~e^-margin of the mass) and
    a random student; the last 8 rows are ignored."""
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(n, c, generator=g, dtype=torch.float64)
    teacher[:, :3] += margin
    student = torch.randn(n, c, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, c, (n, ), generator=g)
    labels[-8:] = 255
    return student, teacher, labels


def test_gradient_magnitudes_follow_the_closed_form():
    s, t, labels = confident_rows()
    stats = GradientMagnitudes(LOSSES, k=3)
    stats.update(s.float(), t.float(), labels)
    out = stats.summary()
    valid = (labels != 255).numpy()
    assert out['pixels'] == valid.sum() == sum(out['pixels_by_rest_mass'])

    rows = [(softmax(a), softmax(b))
            for a, b in zip(s.numpy()[valid], t.numpy()[valid])]
    rest = np.arange(3, 10)  # the teacher's top-3 are classes 0..2
    # KD: dL/ds_i = p_i - q_i; its within-rest part is Q2 (p2_i - q2_i).
    kd_rest = np.mean([np.abs(p[rest] - q[rest]).mean() for p, q in rows])
    within = [np.abs(p[rest] / p[rest].sum() - q[rest] / q[rest].sum())
              .mean() for p, q in rows]
    q2 = np.array([q[rest].sum() for _, q in rows])
    kd = out['losses']['KD']
    assert kd['mean_abs_grad_rest'] == pytest.approx(kd_rest, rel=1e-4)
    assert kd['mean_abs_grad_rest_within'] == pytest.approx(
        np.mean(q2 * within), rel=1e-3)
    # GDKD: the within-rest part is w2 (p2_i - q2_i), whatever Q2 is.
    gdkd = out['losses']['GDKD']
    assert gdkd['mean_abs_grad_rest_within'] == pytest.approx(
        2.0 * np.mean(within), rel=1e-4)
    assert q2.max() < 1e-4
    assert kd['mean_abs_grad_rest_within'] < 1e-4 * \
        gdkd['mean_abs_grad_rest_within']
    assert kd['rest_to_top_ratio'] == pytest.approx(
        kd['mean_abs_grad_rest'] / kd['mean_abs_grad_top'])
    # Bins: every valid pixel sits in the bin of its log10 Q2.
    edges = np.array(out['log10_rest_mass_edges'])
    expected = np.histogram(np.clip(np.log10(q2), edges[0], edges[-1]),
                            edges)[0]
    assert out['pixels_by_rest_mass'] == expected.tolist()
    assert set(out['losses']) == set(LOSSES)


def test_gradient_magnitudes_need_a_non_top_group():
    s, t, labels = confident_rows(c=3)
    with pytest.raises(ValueError, match='non-top'):
        GradientMagnitudes({'KD': dict(type='KDLoss')}, k=3).update(
            s, t, labels)


def test_teacher_distribution_on_rows_with_known_answers():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.97, 0.01, 0.01, 0.01],
                          [0.04, 0.92, 0.02, 0.02], [0.25, 0.25, 0.25, 0.25]],
                         dtype=torch.float64)
    labels = torch.tensor([0, 0, 2, 255])
    stats = TeacherDistribution(4, taus=(0.5, 0.9, 0.99), max_topk=3)
    stats.update(probs.log(), labels)
    out = stats.summary(['a', 'b', 'c', 'd'])
    assert out['pixels'] == 3
    assert out['multimodal_fraction'] == pytest.approx(1 / 3)  # row 0 only
    assert out['low_confidence_fraction'] == pytest.approx(1 / 3)
    assert out['mean_top1'] == pytest.approx((0.5 + 0.97 + 0.92) / 3)
    assert out['mean_topk_mass']['2'] == pytest.approx((0.8 + 0.98 + 0.96) / 3)
    entropy = [-(p * np.log(p)).sum() for p in probs[:3].numpy()]
    assert out['mean_entropy'] == pytest.approx(np.mean(entropy))
    assert out['adaptive_k']['0.9']['counts'] == [2, 0, 1, 0]
    means = [out['adaptive_k'][t]['mean'] for t in ('0.5', '0.9', '0.99')]
    assert means == sorted(means)
    assert out['accuracy'] == pytest.approx(2 / 3)  # row 2 predicts b, not c
    per_class = out['per_class']
    assert per_class['pixels'] == [2, 0, 1, 0]
    assert per_class['multimodal'] == [0.5, None, 0.0, None]
    assert per_class['accuracy'] == [1.0, None, 0.0, None]
    assert per_class['adaptive_k']['0.9'][0] == pytest.approx(2.0)
    json.dumps(out)  # JSON-ready


def sampled_labels(logits, temperature, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial(torch.softmax(logits / temperature, 1), 1,
                             generator=g)[:, 0]


def test_ece_is_near_zero_when_labels_follow_the_teacher():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(60000, 5, generator=g) * 2
    calibrated = TeacherDistribution(5)
    calibrated.update(logits, sampled_labels(logits, 1.0, 1))
    assert calibrated.summary()['ece'] < 0.01
    # A teacher sharper than the truth (labels drawn at T=3) is overconfident.
    overconfident = TeacherDistribution(5)
    overconfident.update(logits, sampled_labels(logits, 3.0, 1))
    summary = overconfident.summary()
    assert summary['ece'] > 0.15
    cal = summary['calibration']
    gaps = [c - a for c, a in zip(cal['confidence'], cal['accuracy'])
            if c is not None]
    assert np.mean(gaps) > 0.1


def test_ece_from_bins():
    assert expected_calibration_error(
        np.array([10, 30]), np.array([5.0, 27.0]),
        np.array([4.0, 27.0])) == pytest.approx(1 / 40)
    assert math.isnan(expected_calibration_error(*np.zeros((3, 2))))


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """Tiny data and randomly initialised demo models saved as checkpoints."""
    from mmengine.config import Config
    from mmseg.apis import init_model

    from gdkd_seg.apis import student_config, teacher_config
    from gdkd_seg.datasets.synthetic_cityscapes import \
        generate_synthetic_cityscapes
    root = tmp_path_factory.mktemp('analysis')
    generate_synthetic_cityscapes(str(root / 'data'), num_train=4, num_val=2)
    config = 'configs/demo/gdkd_deeplabv3-r18_deeplabv3-r18w16_1xb8-300it_' \
        'synthetic-cityscapes-128x256.py'
    cfg = Config.fromfile(config)
    ckpts = {}
    for role, role_cfg in (('teacher', teacher_config(cfg)),
                           ('student', student_config(cfg))):
        torch.manual_seed(0)
        model = init_model(role_cfg, None, device='cpu')
        ckpts[role] = str(root / f'{role}.pth')
        torch.save({'state_dict': model.state_dict(), 'meta': {}},
                   ckpts[role])
    return root, config, ckpts


def test_init_teacher_builds_the_teacher_and_loads_its_checkpoint(tiny_run):
    from gdkd_seg.apis import init_teacher
    _, config, ckpts = tiny_run
    teacher = init_teacher(config, ckpts['teacher'])
    saved = torch.load(ckpts['teacher'])['state_dict']
    assert not teacher.training
    assert teacher.decode_head.in_channels == 512  # the student's: 128
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(value, saved[key])


def run_tool(name, *args):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    result = subprocess.run(
        [sys.executable, osp.join('tools', 'analysis_tools', name), *args],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_grad_magnitudes_cli(tiny_run):
    root, config, ckpts = tiny_run
    out = root / 'grad'
    stdout = run_tool('grad_magnitudes.py', config, ckpts['teacher'],
                      ckpts['student'], '--out', str(out), '--data-root',
                      str(root / 'data'), '--k', '2')
    assert 'GDKD' in stdout
    summary = json.loads((out / 'grad_magnitudes.json').read_text())
    assert summary['k'] == 2 and summary['pixels'] > 0
    assert summary['losses']['GDKD']['config']['k'] == 2
    for loss in summary['losses'].values():
        assert loss['mean_abs_grad_top'] > 0
        assert loss['mean_abs_grad_rest'] > 0
    assert (out / 'grad_magnitudes.png').stat().st_size > 0


@pytest.mark.slow
def test_teacher_distribution_cli(tiny_run):
    root, config, ckpts = tiny_run
    out = root / 'dist'
    run_tool('teacher_distribution.py', config, ckpts['teacher'], '--out',
             str(out), '--data-root', str(root / 'data'), '--num-maps', '2',
             '--resolution', 'image')
    summary = json.loads((out / 'teacher_distribution.json').read_text())
    assert summary['pixels'] > 10000  # two 128x256 label maps, few ignored
    assert 0 <= summary['ece'] <= 1
    assert len(summary['per_class']['classes']) == 19
    for name in ('distribution', 'per_class', 'reliability', 'maps'):
        assert (out / f'{name}.png').stat().st_size > 0
