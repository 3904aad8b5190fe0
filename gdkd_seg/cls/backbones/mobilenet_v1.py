"""MobileNet-V1 for ImageNet, as the KD literature uses it (the ResNet-50 ->
MobileNet-V1 pair of OFD, ReviewKD, DKD and mdistiller's
``models/imagenet/mobilenetv1.py``).

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications", 2017, Table 1 at width 1.0: a stride-2 3x3
conv to 32 channels, then 13 depthwise-separable blocks (depthwise 3x3 +
BN + ReLU, pointwise 1x1 + BN + ReLU) to 1024 channels at total stride 32.
mmpretrain has no MobileNet-V1.
"""
from typing import Sequence

import torch.nn as nn
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor

from .utils import stage_outputs

#: (output channels, stride) of the 13 depthwise-separable blocks.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2),
          (1024, 1))


@MODELS.register_module()
class MobileNetV1(BaseModule):
    """MobileNet-V1 (width 1.0).

    Example: ``dict(type='MobileNetV1')`` (1024 output channels).

    Args:
        in_channels (int): Input channels. Default 3.
        out_indices (Sequence[int]): Blocks to return, 0 (the stem) to 13.
            Default (13,).
        init_cfg: see mmengine's BaseModule. Default: Kaiming-normal
            (fan_out) convs, BN weight 1 and bias 0.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_indices: Sequence[int] = (13, ),
        init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                  dict(type='Constant', val=1, layer='_BatchNorm'))
    ) -> None:
        super().__init__(init_cfg=list(init_cfg) if init_cfg else None)
        if not out_indices or not all(0 <= i <= 13 for i in out_indices):
            raise ValueError(
                f'out_indices must lie in 0..13, got {out_indices}')
        bn = dict(type='BN')
        self.layers = nn.ModuleList(
            [ConvModule(in_channels, 32, 3, 2, padding=1, norm_cfg=bn)])
        width = 32
        for channels, stride in BLOCKS:
            self.layers.append(
                DepthwiseSeparableConvModule(
                    width, channels, 3, stride, padding=1, norm_cfg=bn))
            width = channels
        self.out_indices = tuple(out_indices)

    def forward(self, x: Tensor) -> tuple:
        return stage_outputs(x, self.layers, self.out_indices)
