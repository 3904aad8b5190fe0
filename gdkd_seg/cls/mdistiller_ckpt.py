"""Key names of mdistiller's CIFAR checkpoints -> gdkd_seg's classifiers.

mdistiller (and CRD before it) released the CIFAR-100 teachers every KD paper
distils from. ``CifarResNet``, ``CifarWideResNet`` and ``CifarVGG`` are the
same networks under mmpretrain's names, so converting is renaming.
"""
import re
from typing import Dict

import torch

# (pattern, replacement) applied in order to each mdistiller key, per family;
# the family is told apart by its first stage's name.
RULES = {
    'resnet': [(r'^fc\.', 'head.fc.'), (r'^(?!head\.)', 'backbone.')],
    'wrn':
    [(r'^fc\.', 'head.fc.'),
     (r'^block(\d)\.layer\.', lambda m: f'stages.{int(m.group(1)) - 1}.'),
     (r'\.convShortcut\.', '.shortcut.'), (r'^(?!head\.)', 'backbone.')],
    'vgg': [(r'^classifier\.', 'head.fc.'), (r'^block(\d)\.', r'stages.\1.'),
            (r'^(?!head\.)', 'backbone.')],
}


def _family(state_dict: Dict[str, torch.Tensor]) -> str:
    if any(k.startswith('layer1.') for k in state_dict):
        return 'resnet'
    if any(k.startswith('block1.layer.') for k in state_dict):
        return 'wrn'
    if any(k.startswith('block0.') for k in state_dict):
        return 'vgg'
    raise ValueError('not an mdistiller CIFAR ResNet, WRN or VGG state dict '
                     f'(keys like {list(state_dict)[:3]})')


def convert_mdistiller_cifar(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename an mdistiller CIFAR ResNet/WRN/VGG state dict (``module.``
    prefixes allowed) to the keys of the matching ImageClassifier of
    ``configs/cls/baselines/``."""
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
