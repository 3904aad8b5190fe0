"""Key names of mdistiller's CIFAR checkpoints -> gdkd_seg's classifiers.

mdistiller (and CRD before it) released the CIFAR-100 teachers every KD paper
distils from: resnet56, resnet110, resnet32x4, wrn_40_2, vgg13 and ResNet50.
``CifarResNet``, ``CifarWideResNet``, ``CifarVGG`` and mmpretrain's
``ResNet_CIFAR`` (depth 50: mdistiller's ``resnetv2.ResNet50``) are the same
networks under mmpretrain's names, so converting is renaming.
"""
import re
from typing import Dict

import torch

# (pattern, replacement) applied in order to each mdistiller key, per family;
# the family is told apart by its stage names (ResNet50 alone has a fourth).
RULES = {
    'resnet50': [(r'^linear\.', 'head.fc.'), (r'\.shortcut\.', '.downsample.'),
                 (r'^(?!head\.)', 'backbone.')],
    'resnet': [(r'^fc\.', 'head.fc.'), (r'^(?!head\.)', 'backbone.')],
    'wrn':
    [(r'^fc\.', 'head.fc.'),
     (r'^block(\d)\.layer\.', lambda m: f'stages.{int(m.group(1)) - 1}.'),
     (r'\.convShortcut\.', '.shortcut.'), (r'^(?!head\.)', 'backbone.')],
    'vgg': [(r'^classifier\.', 'head.fc.'), (r'^block(\d)\.', r'stages.\1.'),
            (r'^(?!head\.)', 'backbone.')],
}


def _family(state_dict: Dict[str, torch.Tensor]) -> str:
    if any(k.startswith('layer4.') for k in state_dict):
        return 'resnet50'
    if any(k.startswith('layer1.') for k in state_dict):
        return 'resnet'
    if any(k.startswith('block1.layer.') for k in state_dict):
        return 'wrn'
    if any(k.startswith('block0.') for k in state_dict):
        return 'vgg'
    raise ValueError('not an mdistiller CIFAR ResNet, ResNet50, WRN or VGG '
                     f'state dict (keys like {list(state_dict)[:3]})')


def convert_mdistiller_cifar(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename an mdistiller CIFAR ResNet/ResNet50/WRN/VGG state dict
    (``module.`` prefixes allowed) to the keys of the matching
    ImageClassifier of ``configs/cls/baselines/``."""
    state_dict = {
        k[len('module.'):] if k.startswith('module.') else k: v
        for k, v in state_dict.items()
    }
    rules = RULES[_family(state_dict)]
    converted = {}
    for key, value in state_dict.items():
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key, count=1)
        converted[key] = value
    return converted
