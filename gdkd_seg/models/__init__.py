"""Models for classification distillation, registered in mmpretrain's
MODELS (import ``gdkd_seg.cls`` to register them; needs mmpretrain)."""
from .backbones import CifarResNet, CifarVGG, CifarWideResNet

__all__ = ['CifarResNet', 'CifarVGG', 'CifarWideResNet']
