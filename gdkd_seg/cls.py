"""Classification on mmpretrain: importing this module registers
:class:`ClsDistiller` and the CIFAR backbones (CifarResNet, CifarWideResNet,
CifarVGG) in mmpretrain's MODELS.

It is separate from ``import gdkd_seg`` because mmpretrain (and the
torchvision it imports) is optional for segmentation. Classification configs
load it with ``custom_imports=dict(imports=['gdkd_seg.cls'])``.
"""
from .distillers.cls_distiller import ClsDistiller
from .models import CifarResNet, CifarVGG, CifarWideResNet

__all__ = ['ClsDistiller', 'CifarResNet', 'CifarVGG', 'CifarWideResNet']
