"""Every classification config builds, takes a training step on random
images, and carries the official recipe (docs/method.md)."""
import glob
import os.path as osp

import pytest
import torch
from cls_helpers import build, load_config, mmpretrain_scope  # noqa: F401

from gdkd_seg.apis import check_total_batch

CONFIGS = sorted(
    p for p in glob.glob('configs/cls/**/*.py', recursive=True)
    if '_base_' not in p.split(osp.sep))
CIFAR = [p for p in CONFIGS if p.endswith('_cifar100.py')]
IMAGENET = [p for p in CONFIGS if p.endswith('_in1k.py')]
DISTILL = [p for p in CIFAR + IMAGENET if '/baselines/' not in p]

# GDKD (w0, w1, w2) and DKD beta per CIFAR-100 pair.
CIFAR_PAIRS = {
    'resnet32x4_resnet8x4': ((1.0, 2.0, 8.0), 8.0),
    'wrn40-2_wrn16-2': ((1.0, 2.0, 6.0), 6.0),
    'resnet56_resnet20': ((1.0, 1.0, 1.0), 2.0),
    'vgg13_vgg8': ((1.0, 1.0, 6.0), 6.0),
}


def test_every_pair_has_student_kd_dkd_and_gdkd():
    names = {osp.basename(p) for p in CONFIGS}
    for pair in CIFAR_PAIRS:
        student = pair.split('_')[1]
        for method in ('kd', 'dkd', 'gdkd'):
            assert f'{method}_{pair}_1xb64-240e_cifar100.py' in names
        assert f'{student}_1xb64-240e_cifar100.py' in names
    for method in ('kd', 'dkd', 'gdkd'):
        assert f'{method}_resnet34_resnet18_8xb64-100e_in1k.py' in names
    assert len(CONFIGS) == 29


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_config_builds_and_takes_a_training_step(config):
    from mmpretrain.structures import DataSample
    cfg = load_config(config)
    model = build(cfg)
    model.train()
    size, classes = {
        'cifar100': (32, 100),
        'in1k': (64, 1000)
    }.get(config.rsplit('_', 1)[1][:-3], (28, 10))
    channels = 1 if classes == 10 else 3
    samples = [DataSample().set_gt_label(c) for c in (0, classes - 1)]
    data = model.data_preprocessor(
        dict(
            inputs=[torch.randint(0, 255, (channels, size, size))] * 2,
            data_samples=samples), True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()


@pytest.mark.parametrize('config', CIFAR, ids=osp.basename)
def test_cifar_recipe(config):
    cfg = load_config(config)
    assert check_total_batch(cfg, config, 1) == 64
    assert cfg.train_dataloader.batch_size == 64
    assert cfg.train_cfg.max_epochs == 240
    assert cfg.optim_wrapper.optimizer == dict(
        type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)
    assert cfg.param_scheduler.milestones == [150, 180, 210]
    model = cfg.model
    if model.type != 'ClsDistiller':
        return
    pair = osp.basename(config).split('_', 1)[1].rsplit('_', 2)[0]
    (w0, w1, w2), beta = CIFAR_PAIRS[pair]
    loss = model.distill_losses.head
    assert loss.temperature == 4.0
    if loss.type == 'GDKDLoss':
        assert (loss.k, loss.w0, loss.w1, loss.w2) == (5, w0, w1, w2)
        assert model.warmup_epochs == 20
    elif loss.type == 'DKDLoss':
        assert (loss.alpha, loss.beta) == (1.0, beta)
        assert model.warmup_epochs == 20
    else:  # mdistiller's KD: 0.9 KD + 0.1 CE, no warmup
        assert loss.loss_weight == 0.9
        assert model.student.head.loss.loss_weight == 0.1
        assert not model.get('warmup_epochs')


@pytest.mark.parametrize('config', IMAGENET, ids=osp.basename)
def test_imagenet_recipe(config):
    cfg = load_config(config)
    assert check_total_batch(cfg, config, 8) == 512
    assert cfg.optim_wrapper.optimizer.lr == 0.2
    assert cfg.train_cfg.max_epochs == 100
    assert cfg.param_scheduler.milestones == [30, 60, 90]
    if cfg.model.type != 'ClsDistiller':
        return
    assert cfg.model.teacher_ckpt.startswith(
        'https://download.openmmlab.com/mmclassification/v0/resnet/'
        'resnet34_8xb32_in1k')
    loss = cfg.model.distill_losses.head
    assert loss.temperature == 1.0
    if loss.type == 'GDKDLoss':
        assert (loss.k, loss.w0, loss.w1, loss.w2) == (5, 0.5, 1.0, 1.0)
        assert cfg.model.warmup_epochs == 1


def test_distill_configs_are_the_pairs_their_names_say():
    for config in DISTILL:
        _, teacher, student, schedule, dataset = osp.basename(config).split(
            '_')
        cfg = load_config(config)
        assert teacher in cfg.model.teacher
        baseline = load_config(
            f'configs/cls/baselines/{student}_{schedule}_{dataset}')
        assert cfg.model.student.backbone == baseline.model.backbone


def test_teachers_may_name_package_configs():
    """``pkg::path`` resolves as a teacher, as it does as a ``_base_``."""
    from gdkd_seg.distillers import resolve_model_cfg
    seg = resolve_model_cfg(
        'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        'teacher')
    assert seg['backbone']['depth'] == 101
    cls = resolve_model_cfg('mmpretrain::resnet/resnet34_8xb32_in1k.py',
                            'teacher')
    assert cls['backbone']['depth'] == 34
    with pytest.raises(FileNotFoundError, match='teacher config'):
        resolve_model_cfg('mmpretrain::resnet/nope.py', 'teacher')
