"""gdkd_seg's losses inside mmrazor's SingleTeacherDistill.

The example config trains for a few iterations on CPU through mmengine's
Runner (tiny generated Cityscapes-format data, models from scratch, no
teacher checkpoint); the distillation losses must be logged, finite and
positive, ignore-labelled pixels must contribute nothing, and the saved
checkpoint must export to a plain mmseg student.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from gdkd_seg.export import extract_student_state_dict
from test_end_to_end import run as run_cli

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(
    REPO, 'configs', 'mmrazor',
    'gdkd-logits_deeplabv3-r101_deeplabv3-r18_4xb2-80k_cityscapes-512x1024.py')
CROP = (64, 128)  # (H, W): decode-head logits are 8 x 16
ITERS = 3
# The rest of the family, fed like the example's loss_gdkd: all of them mask
# ignored pixels with the recorded labels, and DKD also partitions by them.
EXTRA_LOSSES = dict(
    loss_kd=dict(type='mmseg.KDLoss'),
    loss_dkd=dict(type='mmseg.DKDLoss'),
    loss_gdkd3=dict(type='mmseg.GDKD3Loss'))


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code],
                          capture_output=True,
                          text=True,
                          cwd=REPO)


def test_import_gdkd_seg_leaves_mmrazor_and_mmpretrain_alone():
    out = _python('import sys, gdkd_seg; print(sorted(m for m in sys.modules '
                  "if m.startswith(('mmrazor', 'gdkd_seg.compat.mmrazor', "
                  "'gdkd_seg.interop', 'mmpretrain', 'gdkd_seg.cls'))))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'


def test_fix_is_needed_exactly_when_torch_lacks_mmrazors_imports():
    pytest.importorskip('mmrazor')
    from gdkd_seg.compat.mmrazor import mmrazor_quantization_imports_fail
    # In a fresh process: mmrazor.models imported without the fix.
    unfixed = _python('import gdkd_seg, mmrazor.models')
    if mmrazor_quantization_imports_fail():
        assert 'is not installed properly' in unfixed.stderr
    else:
        assert unfixed.returncode == 0, unfixed.stderr


def test_missing_joblib_is_named():
    pytest.importorskip('mmrazor')
    out = _python("import sys; sys.modules['joblib'] = None; "
                  'import gdkd_seg.interop.mmrazor')
    assert 'mmrazor 1.0.0 imports joblib without declaring it' in out.stderr


def test_fix_restores_digit_version_everywhere():
    pytest.importorskip('mmrazor')
    from mmengine.utils import digit_version

    from gdkd_seg.compat.mmrazor import import_mmrazor
    import_mmrazor()
    stale = [
        name for name, module in list(sys.modules.items())
        if name.startswith('mmrazor') and getattr(
            module, 'digit_version', digit_version) is not digit_version
    ]
    assert stale == []


def _write_cityscapes(root: str, n: int = 4) -> None:
    """Random images and labels in Cityscapes' train layout."""
    rng = np.random.default_rng(0)
    for i in range(n):
        name = f'toy_{i:06d}_000019'
        img = rng.integers(0, 256, (*CROP, 3), dtype=np.uint8)
        label = rng.integers(0, 19, CROP, dtype=np.uint8)
        label[:4] = 255
        for sub, suffix, array in (('leftImg8bit', 'leftImg8bit', img),
                                   ('gtFine', 'gtFine_labelTrainIds', label)):
            folder = osp.join(root, sub, 'train', 'toy')
            os.makedirs(folder, exist_ok=True)
            assert cv2.imwrite(osp.join(folder, f'{name}_{suffix}.png'), array)


def _offline_seg_model(cfg_path: str) -> dict:
    """The mmseg model of ``cfg_path``, from scratch and sized to CROP."""
    from mmengine.hub import get_config
    cfg = get_config(cfg_path)
    model = cfg.model
    model.pretrained = None  # else the Runner downloads ImageNet weights
    model.data_preprocessor = dict(cfg.data_preprocessor, size=CROP)
    model._scope_ = 'mmseg'
    return model.to_dict()


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A Runner after ``ITERS`` iterations of the example config."""
    pytest.importorskip('mmrazor')
    from mmengine.config import Config
    from mmengine.runner import Runner

    tmp = tmp_path_factory.mktemp('mmrazor')
    data_root = str(tmp / 'cityscapes')
    _write_cityscapes(data_root)

    cfg = Config.fromfile(CONFIG)
    cfg.model.architecture = _offline_seg_model(cfg.student_cfg_path)
    cfg.model.teacher = _offline_seg_model(cfg.teacher_cfg_path)
    cfg.model.teacher_ckpt = None
    distiller = cfg.model.distiller
    for name, loss in EXTRA_LOSSES.items():
        distiller.distill_losses[name] = loss
        distiller.loss_forward_mappings[name] = \
            distiller.loss_forward_mappings.loss_gdkd
    cfg.train_dataloader.update(
        batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(
        data_root=data_root,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')
        ])
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=ITERS)
    for stage in ('val', 'test'):
        cfg[f'{stage}_dataloader'] = cfg[f'{stage}_cfg'] = None
        cfg[f'{stage}_evaluator'] = None
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = ITERS
    cfg.work_dir = str(tmp / 'work_dir')
    cfg.randomness = dict(seed=0)

    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _loss_names():
    return ['loss_gdkd', 'loss_gdkd_aux', *EXTRA_LOSSES]


@pytest.mark.slow
def test_distill_losses_are_logged_finite_and_positive(run):
    from gdkd_seg.losses import DKDLoss
    # mmrazor registers a DKDLoss of its own; 'mmseg.' must pick ours.
    assert isinstance(run.model.distiller.distill_losses['loss_dkd'], DKDLoss)
    for name in _loss_names():
        history, _ = run.message_hub.get_scalar(f'train/distill.{name}').data
        assert len(history) == ITERS, name
        assert np.isfinite(history).all() and (history > 0).all(), name


def _losses_and_logits(run, ignore_columns: slice):
    """One batch through the distiller, labels 255 in ``ignore_columns``
    and a valid class elsewhere."""
    from mmengine.dataset import pseudo_collate
    model = run.model
    dataset = run.train_dataloader.dataset
    batch = pseudo_collate([dataset[0], dataset[1]])
    data = model.data_preprocessor(batch, True)
    for sample in data['data_samples']:
        sample.gt_sem_seg.data.fill_(1)
        sample.gt_sem_seg.data[..., ignore_columns] = 255
    # Eval mode: no dropout, and BN running stats stay as trained (the
    # export test compares the live student with the saved checkpoint).
    model.eval()
    try:
        with torch.no_grad():
            losses = model(**data, mode='loss')
    finally:
        model.train()
    recorded = [
        recorders.get_recorder('logits').data_buffer[0]
        for recorders in (model.distiller.student_recorders,
                          model.distiller.teacher_recorders)
    ]
    return losses, recorded


@pytest.mark.slow
def test_all_ignored_batch_gives_zero_distill_loss(run):
    losses, _ = _losses_and_logits(run, slice(None))
    for name in _loss_names():
        assert losses[f'distill.{name}'].item() == 0, name


@pytest.mark.slow
def test_ignored_pixels_are_left_out_of_the_mean(run):
    from gdkd_seg.losses import GDKDLoss
    # Labels in the left half (columns < 64) ignored: on the 8 x 16 logit
    # grid, nearest sampling maps columns 0..7 there.
    losses, (student, teacher) = _losses_and_logits(run, slice(0, 64))
    per_pixel = GDKDLoss(reduction='none')(student, teacher)
    per_pixel = per_pixel.reshape(student.shape[0], *student.shape[2:])
    expected = per_pixel[..., 8:].mean()
    torch.testing.assert_close(losses['distill.loss_gdkd'], expected)
    assert not torch.isclose(expected, per_pixel.mean())


@pytest.mark.slow
def test_checkpoint_exports_to_a_plain_mmseg_student(run):
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS

    from gdkd_seg.compat.torch_load import load_from_local
    ckpt = load_from_local(osp.join(run.work_dir, f'iter_{ITERS}.pth'))
    assert any(k.startswith('teacher.') for k in ckpt['state_dict'])
    weights = extract_student_state_dict(ckpt['state_dict'])

    student_cfg = run.cfg.model.architecture
    plain = revert_sync_batchnorm(MODELS.build(student_cfg))
    plain.load_state_dict(weights, strict=True)

    distilled = run.model.student
    plain.eval()
    distilled.eval()
    x = torch.randn(1, 3, *CROP)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), distilled(x))


@pytest.mark.slow
def test_cli_export_is_tested_by_plain_mmseg(run, tmp_path):
    """tools/model_converters/export_student.py on the shipped config (its
    student given by ``cfg_path``) and mmrazor's checkpoint, then mmseg's own
    tools/test.py on what it wrote."""
    from mmengine.config import Config
    student, config = str(tmp_path / 'student.pth'), str(tmp_path / 'stu.py')
    run_cli([
        sys.executable, 'tools/model_converters/export_student.py', CONFIG,
        osp.join(run.work_dir, f'iter_{ITERS}.pth'), student, '--out-config',
        config
    ])
    exported = Config.fromfile(config)
    assert exported.model.type == 'EncoderDecoder'
    assert exported.val_cfg.type == 'ValLoop'
    assert 'custom_imports' not in exported
    weights = torch.load(student, weights_only=True)['state_dict']
    live = run.model.student.state_dict()
    assert weights.keys() == live.keys()
    for key, value in live.items():
        torch.testing.assert_close(weights[key], value, msg=key)

    # The toy data is a train split of 64 x 128 images.
    data_root = run.cfg.train_dataloader.dataset.data_root
    log = run_cli([
        sys.executable, 'tools/misc/mmseg_tool.py', 'test', config, student,
        '--work-dir',
        str(tmp_path / 'test'), '--cfg-options',
        f'test_dataloader.dataset.data_root={data_root}',
        'test_dataloader.dataset.data_prefix.img_path=leftImg8bit/train',
        'test_dataloader.dataset.data_prefix.seg_map_path=gtFine/train',
        f'test_dataloader.dataset.pipeline.1.scale={CROP[::-1]}'.replace(
            ' ', ''), 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'])
    assert re.search(r'mIoU: \d+\.\d+', log), log[-2000:]
