"""Every classification config builds, takes a training step on random
images, and carries the official recipe and loss values: those of the
official classification code, ZaberKo/GDKD (an mdistiller fork), file by
file (docs/classification.md)."""
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
TRANSFER = [
    p for p in CONFIGS if p.endswith(('_cub.py', '_tiny-imagenet.py'))
]
DISTILL = [p for p in CIFAR + IMAGENET + TRANSFER if '/baselines/' not in p]

METHODS = ('kd', 'dkd', 'gdkd', 'gdkd3', 'dist', 'lskd')

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
    LSKD: T 2, CE 0.1, KD 9; CE weight 1 but for KD and LSKD)."""
    name, lr, beta, gdkd, gdkd3 = CIFAR_OFFICIAL[pair]
    values = {
        'kd': dict(temperature=4.0, ce=0.1, weight=0.9, warmup=0),
        'dkd': dict(alpha=1.0, beta=beta, temperature=4.0, warmup=20),
        'gdkd': dict(k=5, w0=1.0, w1=gdkd[0], w2=gdkd[1], temperature=4.0,
                     warmup=20),
        'gdkd3': dict(k=4, w0=1.0, w1=gdkd3[0], w2=gdkd3[1],
                      temperature=4.0, warmup=20),
        'dist': dist_values(beta=2.0, gamma=2.0, temperature=4.0),
        'lskd': dict(temperature=2.0, standardize='global', ce=0.1,
                     weight=9.0, warmup=0),
    }[method]
    return f'configs/cifar100/{method}/{name}.yaml', dict(values, lr=lr)


# ImageNet and transfer learning, the files ZaberKo/GDKD
# configs/<root>/<dir>/<method>.yaml (none for GDKD3 there).
# pair: (dir, DKD beta, GDKD (w0, w1, w2));
# every file sets T 1, KD 0.5 KD + 0.5 CE, DKD and GDKD a 1-epoch warm-up and
# CE weight 1, DIST its T only (the defaults BETA 2, GAMMA 2).
LARGE_PAIRS = {
    'resnet34_resnet18': ('r34_r18', 0.5, (0.5, 1.0, 1.0)),
    'resnet50_mobilenetv1': ('r50_mv1', 2.0, (0.5, 2.0, 2.0)),
}
# The lskd.yaml files set LSKD T 2, KD 9 and CE 1 (ResNet-34 -> ResNet-18) or
# 0.5 (ResNet-50 -> MobileNet-V1).
LSKD_CE = {'resnet34_resnet18': 1.0, 'resnet50_mobilenetv1': 0.5}
# dataset: (root, lr, DIST T). The ImageNet dist.yaml files set `GDKD.T: 1.0`,
# which DIST does not read: DIST runs at its default DIST.T 4.
LARGE_DATASETS = {
    'in1k': ('imagenet', 0.2, 4.0),
    'cub': ('TL/cub2011', 0.0025, 1.0),
    'tiny-imagenet': ('TL/tiny-imagenet', 0.001, 1.0),
}


def large_official(method, pair, dataset):
    """The official file of ``method`` on an ImageNet or transfer-learning
    ``pair`` and the values it runs."""
    folder, beta, (w0, w1, w2) = LARGE_PAIRS[pair]
    root, lr, dist_temperature = LARGE_DATASETS[dataset]
    values = {
        'kd': dict(temperature=1.0, ce=0.5, weight=0.5, warmup=0),
        'dkd': dict(alpha=1.0, beta=beta, temperature=1.0, warmup=1),
        'gdkd': dict(k=5, w0=w0, w1=w1, w2=w2, temperature=1.0, warmup=1),
        'dist': dist_values(beta=2.0, gamma=2.0,
                            temperature=dist_temperature),
        'lskd': dict(temperature=2.0, standardize='global',
                     ce=LSKD_CE[pair], weight=9.0, warmup=0),
    }[method]
    return f'configs/{root}/{folder}/{method}.yaml', dict(values, lr=lr)


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


def sgd(cfg):
    """(lr, momentum, weight decay) of a config's SGD."""
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'SGD'
    return optimizer.lr, optimizer.momentum, optimizer.weight_decay


def test_every_pair_has_student_and_every_method():
    names = {osp.basename(p) for p in CONFIGS}
    for pair in CIFAR_OFFICIAL:
        teacher, student = pair.split('_')
        for method in METHODS:
            assert f'{method}_{pair}_1xb64-240e_cifar100.py' in names
        for model in (teacher, student):
            assert f'{model}_1xb64-240e_cifar100.py' in names
    for pair in LARGE_PAIRS:
        for dataset in LARGE_DATASETS:
            schedule = '8xb64' if dataset == 'in1k' else '1xb64'
            for method in ('kd', 'dkd', 'gdkd', 'dist', 'lskd'):
                assert f'{method}_{pair}_{schedule}-100e_{dataset}.py' in \
                    names
            for model in pair.split('_'):
                if dataset != 'in1k':  # ImageNet teachers: model zoo
                    assert f'{model}_{schedule}-100e_{dataset}.py' in names


# The ImageNet-size pairs (ResNet-34/50 teachers, 2 s a step on a shared
# 2-core machine) run with the slow tests.
@pytest.mark.parametrize('config', [
    pytest.param(p, marks=pytest.mark.slow)
    if p in DISTILL and p not in CIFAR else p for p in CONFIGS
], ids=osp.basename)
def test_config_builds_and_takes_a_training_step(config):
    from mmpretrain.structures import DataSample
    cfg = load_config(config)
    model = build(cfg)
    model.train()
    size, classes = {
        'cifar100': (32, 100),
        'in1k': (64, 1000),
        'cub': (64, 200),
        'tiny-imagenet': (64, 200),
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


def official_dist(student, teacher, temperature, beta, gamma):
    """The official classification DIST in float64 (mdistiller fork,
    mdistiller/distillers/DIST.py): T**2 (beta inter + gamma intra), inter
    and intra 1 - mean Pearson correlation of the softened outputs over the
    rows, and over the columns (the batch)."""
    def correlation(a, b):
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))

    p = torch.softmax(student.double() / temperature, 1)
    q = torch.softmax(teacher.double() / temperature, 1)
    inter = 1 - correlation(p, q).mean()
    intra = 1 - correlation(p.T, q.T).mean()
    return temperature**2 * (beta * inter + gamma * intra)


@pytest.mark.parametrize('config', [
    'configs/cls/dist/dist_resnet32x4_resnet8x4_1xb64-240e_cifar100.py',
    'configs/cls/dist/dist_resnet34_resnet18_1xb64-100e_cub.py',
], ids=osp.basename)
def test_dist_configs_compute_the_official_loss(config):
    """DISTLoss has no T**2 factor; with the configs' beta and gamma it is
    the official loss at the official beta = gamma = 2."""
    from mmseg.registry import MODELS as SEG_MODELS
    loss = load_config(config).model.distill_losses.head
    loss_fn = SEG_MODELS.build(dict(loss, ignore_index=-1, _scope_='mmseg'))
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 8, 100, generator=g).mul(3).unbind()
    got = loss_fn(student, teacher, torch.arange(8))
    want = official_dist(student, teacher, loss.temperature, 2.0, 2.0)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize('config', CIFAR, ids=osp.basename)
def test_cifar_recipe(config):
    cfg = load_config(config)
    assert check_total_batch(cfg, config, 1) == 64
    assert cfg.train_dataloader.batch_size == 64
    assert cfg.train_cfg.max_epochs == 240
    student = osp.basename(config).split('_')[-3]
    lr = 0.01 if student.startswith(('mobilenet', 'shufflenet')) else 0.05
    assert sgd(cfg) == (lr, 0.9, 5e-4)
    assert cfg.param_scheduler.milestones == [150, 180, 210]


@pytest.mark.parametrize('config', DISTILL, ids=osp.basename)
def test_configs_carry_the_official_values(config):
    method, teacher, student, _, dataset = osp.basename(config)[:-3].split(
        '_')
    pair = f'{teacher}_{student}'
    source, want = cifar_official(method, pair) if dataset == 'cifar100' \
        else large_official(method, pair, dataset)
    with open(config) as f:
        assert f'ZaberKo/GDKD {source}' in f.read()
    assert config_values(load_config(config)) == want, source


@pytest.mark.parametrize('config', IMAGENET, ids=osp.basename)
def test_imagenet_recipe(config):
    cfg = load_config(config)
    assert check_total_batch(cfg, config, 8) == 512
    assert sgd(cfg) == (0.2, 0.9, 1e-4)
    assert cfg.train_cfg.max_epochs == 100
    assert cfg.param_scheduler.milestones == [30, 60, 90]
    if cfg.model.type != 'ClsDistiller':
        return
    teacher = osp.basename(config).split('_')[1]
    assert cfg.model.teacher_ckpt.startswith(
        'https://download.openmmlab.com/mmclassification/v0/resnet/'
        f'{teacher}_8xb32_in1k')


@pytest.mark.parametrize('config', TRANSFER, ids=osp.basename)
def test_transfer_learning_recipe(config):
    """ZaberKo/GDKD configs/TL/{cub2011,tiny-imagenet}/*: batch 64 on one
    GPU, 100 epochs, wd 1e-3, lr 0.0025 at 40/80 (CUB) or 0.001 at 30/60
    (Tiny-ImageNet), every network starting from ImageNet weights."""
    cfg = load_config(config)
    dataset = osp.basename(config)[:-3].rsplit('_', 1)[1]
    lr, milestones, data_type = {
        'cub': (0.0025, [40, 80], 'CUB'),
        'tiny-imagenet': (0.001, [30, 60], 'CustomDataset'),
    }[dataset]
    assert check_total_batch(cfg, config, 1) == 64
    assert cfg.train_cfg.max_epochs == 100
    assert sgd(cfg) == (lr, 0.9, 1e-3)
    assert cfg.param_scheduler.milestones == milestones
    assert cfg.train_dataloader.dataset.type == data_type
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert (crop.type, crop.scale) == ('RandomResizedCrop', 224)
    student = cfg.model.get('student', cfg.model)
    assert student.head.num_classes == 200
    assert student.backbone.init_cfg.type == 'Pretrained'
    if cfg.model.type == 'ClsDistiller':
        assert cfg.model.teacher_ckpt == 'work_dirs/{}/epoch_100.pth'.format(
            osp.basename(cfg.model.teacher)[:-3])


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
