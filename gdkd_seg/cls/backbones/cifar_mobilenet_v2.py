"""MobileNetV2 for CIFAR (the KD papers' ``MobileNetV2``), as CRD/mdistiller
define it (their ``mobile_half``: width 0.5, expansion 6).

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
CVPR 2018, on 32x32 inputs: the second stage keeps stride 1 (ImageNet's has
2), so seven stages at strides 1, 1, 2, 2, 1, 2, 1 after a stride-2 stem
end at 2x2 pixels. Channels are ``int(c * widen_factor)`` without rounding
to multiples of 8, every block (the first stage's too) has its 1x1
expansion conv, and the last 1x1 conv has 1280 channels for widen factors
up to 1. mmpretrain's ``MobileNetV2`` differs in each of these.
"""
from typing import Sequence

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor

from .utils import stage_outputs

#: (channels, blocks, stride) per stage; the first stage has expansion 1,
#: the others ``expand_ratio``.
STAGES = ((16, 1, 1), (24, 2, 1), (32, 3, 2), (64, 4, 2), (96, 3, 1),
          (160, 3, 2), (320, 1, 1))
LAST_CHANNELS = 1280


class InvertedResidual(nn.Module):
    """1x1 expand -> depthwise 3x3 -> linear 1x1, identity shortcut when the
    shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 expand_ratio: int) -> None:
        super().__init__()
        mid = in_channels * expand_ratio
        bn = dict(type='BN')
        self.conv = nn.Sequential(
            ConvModule(in_channels, mid, 1, bias=False, norm_cfg=bn),
            ConvModule(mid, mid, 3, stride, padding=1, groups=mid,
                       bias=False, norm_cfg=bn),
            ConvModule(mid, out_channels, 1, bias=False, norm_cfg=bn,
                       act_cfg=None))
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_shortcut else out


@MODELS.register_module()
class CifarMobileNetV2(BaseModule):
    """MobileNetV2 for 32x32 inputs.

    Example: ``dict(type='CifarMobileNetV2')`` (width 0.5, expansion 6:
    the KD papers' ``MobileNetV2``, 1280 output channels).

    Args:
        widen_factor (float): Channel multiplier. Default 0.5.
        expand_ratio (int): Expansion of stages 2-7. Default 6.
        in_channels (int): Input channels. Default 3.
        out_indices (Sequence[int]): Stages to return, 0..6, or 7 for the
            last 1x1 conv. Default (7,).
        init_cfg: see mmengine's BaseModule. Default: Kaiming-normal
            (fan_out) convs, BN weight 1 and bias 0.
    """

    def __init__(
        self,
        widen_factor: float = 0.5,
        expand_ratio: int = 6,
        in_channels: int = 3,
        out_indices: Sequence[int] = (7, ),
        init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                  dict(type='Constant', val=1, layer='_BatchNorm'))
    ) -> None:
        super().__init__(init_cfg=list(init_cfg) if init_cfg else None)
        if not out_indices or not all(0 <= i <= 7 for i in out_indices):
            raise ValueError(
                f'out_indices must lie in 0..7, got {out_indices}')
        bn = dict(type='BN')
        width = int(32 * widen_factor)
        self.stem = ConvModule(
            in_channels, width, 3, 2, padding=1, bias=False, norm_cfg=bn)
        self.stages = nn.ModuleList()
        for index, (channels, blocks, stride) in enumerate(STAGES):
            channels = int(channels * widen_factor)
            expand = expand_ratio if index else 1
            stage = []
            for i in range(blocks):
                stage.append(
                    InvertedResidual(width, channels, stride if i == 0 else 1,
                                     expand))
                width = channels
            self.stages.append(nn.Sequential(*stage))
        last = LAST_CHANNELS if widen_factor <= 1 else int(LAST_CHANNELS *
                                                           widen_factor)
        self.stages.append(ConvModule(width, last, 1, bias=False,
                                      norm_cfg=bn))
        self.out_indices = tuple(out_indices)

    def forward(self, x: Tensor) -> tuple:
        return stage_outputs(self.stem(x), self.stages, self.out_indices)
