"""Classification on mmpretrain: importing this package registers
:class:`ClsDistiller` and the backbones of the KD literature that mmpretrain
lacks (CifarResNet, CifarWideResNet, CifarVGG, CifarMobileNetV2,
CifarShuffleNetV1, CifarShuffleNetV2, MobileNetV1) in mmpretrain's MODELS.

It is separate from ``import gdkd_seg`` because mmpretrain (and the
torchvision it imports) is optional for segmentation. Classification configs
load it with ``custom_imports=dict(imports=['gdkd_seg.cls'])``.

- ``distiller``: :class:`ClsDistiller`, logit distillation for
  ``ImageClassifier`` pairs;
- ``backbones``: the CIFAR networks of the KD literature and ImageNet
  MobileNet-V1 (the CIFAR ResNet-50 is mmpretrain's ``ResNet_CIFAR``);
- ``mdistiller_ckpt``: renames mdistiller's CIFAR checkpoints to these
  networks' keys (``tools/model_converters/convert_mdistiller_cifar.py``).
"""
from .backbones import (CifarMobileNetV2, CifarResNet, CifarShuffleNetV1,
                        CifarShuffleNetV2, CifarVGG, CifarWideResNet,
                        MobileNetV1)
from .distiller import ClsDistiller

__all__ = [
    'ClsDistiller', 'CifarMobileNetV2', 'CifarResNet', 'CifarShuffleNetV1',
    'CifarShuffleNetV2', 'CifarVGG', 'CifarWideResNet', 'MobileNetV1'
]
