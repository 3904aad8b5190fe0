"""VGG for CIFAR (vgg8, vgg13, ...), as CRD/mdistiller define them.

Simonyan & Zisserman, "Very Deep Convolutional Networks", ICLR 2015, in the
CIFAR form of the KD papers: five stages of 3x3 convs (with bias) + BN +
ReLU, 2x2 max-pools after the first three stages only (32 -> 4 pixels), and
global average pooling instead of the fully connected layers. ``vgg8`` has
one conv per stage. mmpretrain's ``VGG`` pools after every stage and drops
the conv bias under BN, so it is not the same network.
"""
from typing import Sequence

import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor

#: convs per stage; stage widths are 64, 128, 256, 512, 512.
ARCH_SETTINGS = {
    'vgg8': (1, 1, 1, 1, 1),
    'vgg11': (1, 1, 2, 2, 2),
    'vgg13': (2, 2, 2, 2, 2),
    'vgg16': (2, 2, 3, 3, 3),
    'vgg19': (2, 2, 4, 4, 4),
}
STAGE_WIDTHS = (64, 128, 256, 512, 512)
#: stages followed by a 2x2 max-pool (none after the last two).
POOLED_STAGES = (0, 1, 2)


@MODELS.register_module()
class CifarVGG(BaseModule):
    """VGG-BN for 32x32 inputs.

    Example: ``dict(type='CifarVGG', arch='vgg13')``.

    Args:
        arch (str): One of 'vgg8', 'vgg11', 'vgg13', 'vgg16', 'vgg19'.
        in_channels (int): Input channels. Default 3.
        out_indices (Sequence[int]): Stages to return (0..4), each after its
            ReLU and before any pool. Default (4,).
        init_cfg: see mmengine's BaseModule. Default: Kaiming-normal
            (fan_out) convs with zero bias, BN weight 1 and bias 0.
    """

    def __init__(
        self,
        arch: str = 'vgg13',
        in_channels: int = 3,
        out_indices: Sequence[int] = (4, ),
        init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                  dict(type='Constant', val=1, layer='_BatchNorm'))
    ) -> None:
        super().__init__(init_cfg=list(init_cfg) if init_cfg else None)
        if arch not in ARCH_SETTINGS:
            raise KeyError(f'CifarVGG arch must be one of '
                           f'{sorted(ARCH_SETTINGS)}, got {arch!r}')
        if not out_indices or not all(0 <= i < 5 for i in out_indices):
            raise ValueError(
                f'out_indices must lie in 0..4, got {out_indices}')
        self.stages = nn.ModuleList()
        for convs, width in zip(ARCH_SETTINGS[arch], STAGE_WIDTHS):
            layers = []
            for _ in range(convs):
                layers += [
                    nn.Conv2d(in_channels, width, 3, padding=1),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True)
                ]
                in_channels = width
            self.stages.append(nn.Sequential(*layers))
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.out_indices = tuple(out_indices)
        self.feat_dim = STAGE_WIDTHS[-1]

    def forward(self, x: Tensor) -> tuple:
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
            if i in POOLED_STAGES:
                x = self.pool(x)
        return tuple(outs)
