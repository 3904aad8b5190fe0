"""The CIFAR backbones of the KD literature: sizes and feature shapes of
mdistiller's models (megvii-research/mdistiller, models/cifar)."""
import pytest
import torch
from cls_helpers import build, mmpretrain_scope  # noqa: F401

BASELINES = 'configs/cls/baselines/{}_1xb64-240e_cifar100.py'

# Parameter counts of mdistiller's models with a 100-class fc (counted from
# its resnet.py / wrn.py / vgg.py; vgg8/vgg13 are its vgg8_bn/vgg13_bn).
MDISTILLER_PARAMS = {
    'resnet20': 278_324,
    'resnet56': 861_620,
    'resnet8x4': 1_233_540,
    'resnet32x4': 7_433_860,
    'wrn16-2': 703_284,
    'wrn40-2': 2_255_156,
    'vgg8': 3_965_028,
    'vgg13': 9_462_180,
}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('name', sorted(MDISTILLER_PARAMS))
def test_baseline_configs_match_mdistiller_sizes(name):
    model = build(BASELINES.format(name))
    assert n_params(model) == MDISTILLER_PARAMS[name]
    logits = model(torch.randn(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, 100)


def test_resnet110_and_resnet8_sizes():
    from mmpretrain.registry import MODELS
    for depth, want in ((110, 1_736_564), (8, 83_892)):
        model = MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='CifarResNet', depth=depth),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead', num_classes=100, in_channels=64)))
        assert n_params(model) == want


@pytest.mark.parametrize('backbone, shapes', [
    (dict(
        type='CifarResNet',
        depth=8,
        stem_channels=32,
        base_channels=64,
        out_indices=(0, 1, 2)), [(64, 32), (128, 16), (256, 8)]),
    (dict(
        type='CifarWideResNet',
        depth=16,
        widen_factor=2,
        out_indices=(0, 1, 2)), [(32, 32), (64, 16), (128, 8)]),
    (dict(type='CifarVGG',
          arch='vgg8', out_indices=(0, 1, 2, 3, 4)), [(64, 32), (128, 16),
                                                      (256, 8), (512, 4),
                                                      (512, 4)]),
])
def test_stage_outputs_have_the_reference_resolutions(backbone, shapes):
    from mmpretrain.registry import MODELS
    model = MODELS.build(backbone)
    feats = model(torch.randn(2, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [(2, c, s, s) for c, s in shapes]


def test_wrn_last_stage_is_activated_and_grey_input_works():
    from mmpretrain.registry import MODELS
    model = MODELS.build(
        dict(type='CifarWideResNet', depth=10, in_channels=1)).eval()
    (out, ) = model(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 64, 7, 7) and out.min() >= 0


def test_bad_architectures_are_refused():
    from mmpretrain.registry import MODELS
    with pytest.raises(KeyError, match='depth must be one of'):
        MODELS.build(dict(type='CifarResNet', depth=18))
    with pytest.raises(ValueError, match='6n\\+4'):
        MODELS.build(dict(type='CifarWideResNet', depth=18))
    with pytest.raises(KeyError, match='vgg8'):
        MODELS.build(dict(type='CifarVGG', arch='vgg12'))


@pytest.mark.parametrize('name, backbone, width', [
    ('resnet8', dict(type='CifarResNet', depth=8), 64),
    ('wrn_16_2', dict(type='CifarWideResNet', depth=16, widen_factor=2), 128),
    ('vgg8', dict(type='CifarVGG', arch='vgg8'), 512),
])
def test_mdistiller_checkpoints_convert_key_for_key(name, backbone, width):
    """Every key of mdistiller's state dict (names and shapes recorded in
    tests/fixtures) lands on a parameter or buffer of the same shape."""
    import json
    from mmpretrain.registry import MODELS

    from gdkd_seg.cls.mdistiller_ckpt import convert_mdistiller_cifar
    with open('tests/fixtures/mdistiller_cifar_keys.json') as f:
        shapes = json.load(f)[name]
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead', num_classes=100, in_channels=width)))
    theirs = {'module.' + k: torch.zeros(s) for k, s in shapes.items()}
    converted = convert_mdistiller_cifar(theirs)
    ours = model.state_dict()
    assert set(converted) == set(ours)
    assert all(converted[k].shape == v.shape for k, v in ours.items())
