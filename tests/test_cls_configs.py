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

METHODS = ('kd', 'dkd', 'gdkd', 'gdkd3', 'dist')

# The official classification code, ZaberKo/GDKD: each CIFAR-100 pair's file
# configs/cifar100/<method>/<file>.yaml sets the learning rate (0.01 for the
# MobileNet and ShuffleNet students, else 0.05) and the loss weights that
# differ from the defaults of mdistiller/engine/cfg.py (DKD.BETA 8,
# GDKD.W1 1 / W2 8, GDKD3.W1 1 / W2 8).
# pair: (file, lr, DKD beta, GDKD (w1, w2), GDKD3 (w1, w2))
CIFAR_OFFICIAL = {
    'resnet56_resnet20': ('res56_res20', 0.05, 2.0, (1.0, 1.0), (1.0, 1.0)),
    'resnet110_resnet32': ('res110_res32', 0.05, 2.0, (1.0, 1.0), (1.0,
                                                                   1.0)),
    'resnet32x4_resnet8x4': ('res32x4_res8x4', 0.05, 8.0, (2.0, 8.0),
                             (2.0, 8.0)),
    'wrn40-2_wrn16-2': ('wrn40_2_wrn_16_2', 0.05, 6.0, (2.0, 6.0), (2.0,
                                                                    6.0)),
    'wrn40-2_wrn40-1': ('wrn40_2_wrn_40_1', 0.05, 6.0, (2.0, 6.0), (2.0,
                                                                    6.0)),
    'vgg13_vgg8': ('vgg13_vgg8', 0.05, 6.0, (1.0, 6.0), (1.0, 6.0)),
    'vgg13_mobilenetv2': ('vgg13_mv2', 0.01, 6.0, (1.0, 6.0), (1.0, 6.0)),
    'resnet50_mobilenetv2': ('res50_mv2', 0.01, 8.0, (1.0, 8.0), (1.0, 8.0)),
    'resnet32x4_shufflenetv1': ('res32x4_shuv1', 0.01, 8.0, (1.0, 8.0),
                                (1.0, 8.0)),
    'resnet32x4_shufflenetv2': ('res32x4_shuv2', 0.01, 8.0, (1.0, 8.0),
                                (1.0, 8.0)),
    'wrn40-2_shufflenetv1': ('wrn40_2_shuv1', 0.01, 8.0, (2.0, 6.0), (2.0,
                                                                      6.0)),
}


def dist_values(beta, gamma, temperature):
    """DISTLoss's values for an official DIST setting: the official loss
    (mdistiller/distillers/DIST.py) multiplies both terms by T**2,
    DISTLoss does not."""
    return dict(beta=beta * temperature**2, gamma=gamma * temperature**2,
                temperature=temperature, warmup=0)


def cifar_official(method, pair):
    """The official file of ``method`` on ``pair`` and the values it runs:
    the file's own plus mdistiller/engine/cfg.py's defaults (KD: T 4, CE 0.1,
    KD 0.9; DKD: alpha 1, T 4, warm-up 20; GDKD: W0 1, TOPK 5, T 4, warm-up
    20; GDKD3: W0 1, TOPK 4, T 4, warm-up 20; DIST: BETA 2, GAMMA 2, T 4;
    CE weight 1 but for KD)."""
    name, lr, beta, gdkd, gdkd3 = CIFAR_OFFICIAL[pair]
    values = {
        'kd': dict(temperature=4.0, ce=0.1, weight=0.9, warmup=0),
        'dkd': dict(alpha=1.0, beta=beta, temperature=4.0, warmup=20),
        'gdkd': dict(k=5, w0=1.0, w1=gdkd[0], w2=gdkd[1], temperature=4.0,
                     warmup=20),
        'gdkd3': dict(k=4, w0=1.0, w1=gdkd3[0], w2=gdkd3[1],
                      temperature=4.0, warmup=20),
        'dist': dist_values(beta=2.0, gamma=2.0, temperature=4.0),
    }[method]
    return f'configs/cifar100/{method}/{name}.yaml', dict(values, lr=lr)


def config_values(cfg):
    """The values of a distillation config that the official files set."""
    loss = cfg.model.distill_losses.head
    values = {
        k: v
        for k, v in loss.items() if k not in ('type', 'loss_weight')
    }
    values.update(
        lr=cfg.optim_wrapper.optimizer.lr,
        warmup=cfg.model.get('warmup_epochs', 0))
    if loss.type == 'KDLoss':
        values.update(weight=loss.loss_weight,
                      ce=cfg.model.student.head.loss.loss_weight)
    return values


def test_every_pair_has_student_and_every_method():
    names = {osp.basename(p) for p in CONFIGS}
    for pair in CIFAR_OFFICIAL:
        teacher, student = pair.split('_')
        for method in METHODS:
            assert f'{method}_{pair}_1xb64-240e_cifar100.py' in names
        for model in (teacher, student):
            assert f'{model}_1xb64-240e_cifar100.py' in names
    for method in ('kd', 'dkd', 'gdkd'):
        assert f'{method}_resnet34_resnet18_8xb64-100e_in1k.py' in names


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
    student = osp.basename(config).split('_')[-3]
    lr = 0.01 if student.startswith(('mobilenet', 'shufflenet')) else 0.05
    assert cfg.optim_wrapper.optimizer == dict(
        type='SGD', lr=lr, momentum=0.9, weight_decay=5e-4)
    assert cfg.param_scheduler.milestones == [150, 180, 210]


@pytest.mark.parametrize('config', [p for p in DISTILL if p in CIFAR],
                         ids=osp.basename)
def test_cifar_configs_carry_the_official_values(config):
    method, pair = osp.basename(config).split('_', 1)
    pair = pair.rsplit('_', 2)[0]
    source, want = cifar_official(method, pair)
    with open(config) as f:
        assert f'ZaberKo/GDKD {source}' in f.read()
    assert config_values(load_config(config)) == want, source


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
