"""The backbones of the KD literature: sizes and feature shapes of
mdistiller's models (megvii-research/mdistiller, models/cifar and
models/imagenet; the same files in ZaberKo/GDKD, mdistiller/models/)."""
import pytest
import torch
from cls_helpers import build, mmpretrain_scope  # noqa: F401

BASELINES = 'configs/cls/baselines/{}_1xb64-240e_cifar100.py'

# Parameter counts of mdistiller's models with a 100-class fc, counted from
# its models/cifar/ files: resnet.py (resnet*), resnetv2.py (ResNet50),
# wrn.py (wrn_*), vgg.py (vgg8_bn, vgg13_bn), mobilenetv2.py (mobile_half,
# the KD papers' MobileNetV2), ShuffleNetv1.py (ShuffleV1), ShuffleNetv2.py
# (ShuffleV2).
MDISTILLER_PARAMS = {
    'resnet20': 278_324,
    'resnet32': 472_756,
    'resnet56': 861_620,
    'resnet110': 1_736_564,
    'resnet8x4': 1_233_540,
    'resnet32x4': 7_433_860,
    'resnet50': 23_705_252,
    'wrn16-2': 703_284,
    'wrn40-1': 569_780,
    'wrn40-2': 2_255_156,
    'vgg8': 3_965_028,
    'vgg13': 9_462_180,
    'mobilenetv2': 812_836,
    'shufflenetv1': 949_258,
    'shufflenetv2': 1_355_528,
}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('name', sorted(MDISTILLER_PARAMS))
def test_baseline_configs_match_mdistiller_sizes(name):
    model = build(BASELINES.format(name))
    assert n_params(model) == MDISTILLER_PARAMS[name]
    logits = model(torch.randn(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, 100)


def classifier(backbone, width, classes=100):
    from mmpretrain.registry import MODELS
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead', num_classes=classes,
                in_channels=width)))


def test_resnet8_size():
    assert n_params(classifier(dict(type='CifarResNet', depth=8),
                               64)) == 83_892


def test_mobilenet_v1_has_the_literature_size():
    """4,231,976 parameters with the 1000-class fc: mdistiller's
    models/imagenet/mobilenetv1.py (Howard et al. 2017 report 4.2M)."""
    model = classifier(dict(type='MobileNetV1'), 1024, classes=1000)
    assert n_params(model) == 4_231_976
    (feat, ) = model.backbone(torch.randn(1, 3, 64, 64))
    assert feat.shape == (1, 1024, 2, 2)


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
    (dict(type='CifarMobileNetV2', out_indices=tuple(range(8))),
     [(8, 16), (12, 16), (16, 8), (32, 4), (48, 4), (80, 2), (160, 2),
      (1280, 2)]),
    (dict(type='CifarShuffleNetV1', out_indices=(0, 1, 2)), [(240, 16),
                                                            (480, 8),
                                                            (960, 4)]),
    (dict(type='CifarShuffleNetV2', out_indices=(0, 1, 2, 3)),
     [(116, 16), (232, 8), (464, 4), (1024, 4)]),
    (dict(type='ResNet_CIFAR', depth=50, out_indices=(0, 1, 2, 3)),
     [(256, 32), (512, 16), (1024, 8), (2048, 4)]),
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
    for backbone, top in (('CifarMobileNetV2', 7), ('CifarShuffleNetV1', 2),
                          ('MobileNetV1', 13)):
        with pytest.raises(ValueError, match=f'0..{top}'):
            MODELS.build(dict(type=backbone, out_indices=(top + 1, )))


@pytest.mark.parametrize('name, model', [
    ('resnet8', (dict(type='CifarResNet', depth=8), 64)),
    ('wrn_16_2', (dict(type='CifarWideResNet', depth=16, widen_factor=2),
                  128)),
    ('vgg8', (dict(type='CifarVGG', arch='vgg8'), 512)),
    ('resnet56', 'resnet56'),
    ('resnet110', 'resnet110'),
    ('resnet32x4', 'resnet32x4'),
    ('wrn_40_2', 'wrn40-2'),
    ('vgg13', 'vgg13'),
    ('ResNet50', 'resnet50'),
])
def test_mdistiller_checkpoints_convert_key_for_key(name, model):
    """Every key of mdistiller's state dict (names and shapes of its
    models/cifar/ networks with 100 classes, recorded in tests/fixtures) lands
    on a parameter or buffer of the same shape: each official CIFAR-100
    teacher (resnet56, resnet110, resnet32x4, wrn_40_2, vgg13, ResNet50)
    against its baseline config."""
    import json

    from gdkd_seg.cls.mdistiller_ckpt import convert_mdistiller_cifar
    with open('tests/fixtures/mdistiller_cifar_keys.json') as f:
        shapes = json.load(f)[name]
    model = build(BASELINES.format(model)) if isinstance(
        model, str) else classifier(*model)
    theirs = {'module.' + k: torch.zeros(s) for k, s in shapes.items()}
    converted = convert_mdistiller_cifar(theirs)
    ours = model.state_dict()
    assert set(converted) == set(ours)
    assert all(converted[k].shape == v.shape for k, v in ours.items())
