"""Classification on mmpretrain: importing this package registers
:class:`ClsDistiller` and the CIFAR backbones (CifarResNet, CifarWideResNet,
CifarVGG) in mmpretrain's MODELS.

It is separate from ``import gdkd_seg`` because mmpretrain (and the
torchvision it imports) is optional for segmentation. Classification configs
load it with ``custom_imports=dict(imports=['gdkd_seg.cls'])``.

- ``distiller``: :class:`ClsDistiller`, logit distillation for
  ``ImageClassifier`` pairs;
- ``backbones``: the CIFAR networks of the KD literature;
- ``mdistiller_ckpt``: renames mdistiller's CIFAR checkpoints to these
  networks' keys (``tools/convert_mdistiller_cifar.py``).
"""
from .backbones import CifarResNet, CifarVGG, CifarWideResNet
from .distiller import ClsDistiller

__all__ = ['ClsDistiller', 'CifarResNet', 'CifarVGG', 'CifarWideResNet']
