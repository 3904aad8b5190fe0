"""ShuffleNetV1 for CIFAR (``ShuffleV1``), as CRD/mdistiller define it.

Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural
Network for Mobile Devices", CVPR 2018, with 3 groups (stages of 240, 480,
960 channels with 4, 8, 4 units) on 32x32 inputs: the stem is a 1x1 conv to
24 channels at stride 1 with no max-pool. A stage's first unit halves the
resolution and concatenates a 3x3 average-pooled shortcut; its bottleneck
is a quarter of the channels the unit adds (not of its output, as in
mmpretrain's ``ShuffleNetV1``), and the very first unit's compressing 1x1
conv is not grouped (24 input channels).
"""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmpretrain.models.utils import channel_shuffle
from mmpretrain.registry import MODELS
from torch import Tensor

from .utils import stage_outputs

STEM_CHANNELS = 24


class ShuffleUnit(nn.Module):
    """Grouped 1x1 -> channel shuffle -> depthwise 3x3 -> grouped 1x1.

    With ``stride=2`` the output is ``cat(unit(x), avgpool(x))`` (the unit
    adds ``out_channels - in_channels`` channels), else ``unit(x) + x``;
    ReLU after either. ``compress_groups`` groups the first 1x1 conv (and
    the shuffle after it).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 groups: int, compress_groups: int) -> None:
        super().__init__()
        branch_channels = out_channels - (in_channels if stride == 2 else 0)
        mid_channels = branch_channels // 4
        self.compress_groups = compress_groups
        self.compress = ConvModule(
            in_channels, mid_channels, 1, groups=self.compress_groups,
            bias=False, norm_cfg=dict(type='BN'))
        self.depthwise = ConvModule(
            mid_channels, mid_channels, 3, stride, padding=1,
            groups=mid_channels, bias=False, norm_cfg=dict(type='BN'))
        self.expand = ConvModule(
            mid_channels, branch_channels, 1, groups=groups, bias=False,
            norm_cfg=dict(type='BN'), act_cfg=None)
        self.shortcut = nn.AvgPool2d(3, 2, padding=1) if stride == 2 else None

    def forward(self, x: Tensor) -> Tensor:
        out = channel_shuffle(self.compress(x), self.compress_groups)
        out = self.expand(self.depthwise(out))
        if self.shortcut is None:
            return F.relu(out + x)
        return F.relu(torch.cat([out, self.shortcut(x)], dim=1))


@MODELS.register_module()
class CifarShuffleNetV1(BaseModule):
    """ShuffleNetV1 (3 groups) for 32x32 inputs.

    Example: ``dict(type='CifarShuffleNetV1')``.

    Args:
        stage_channels (Sequence[int]): Output channels of the three stages.
            Default (240, 480, 960).
        stage_units (Sequence[int]): Units per stage. Default (4, 8, 4).
        groups (int): Groups of the 1x1 convs. Default 3.
        in_channels (int): Input channels. Default 3.
        out_indices (Sequence[int]): Stages to return (0..2). Default (2,).
        init_cfg: see mmengine's BaseModule. Default: Kaiming-normal
            (fan_out) convs, BN weight 1 and bias 0.
    """

    def __init__(
        self,
        stage_channels: Sequence[int] = (240, 480, 960),
        stage_units: Sequence[int] = (4, 8, 4),
        groups: int = 3,
        in_channels: int = 3,
        out_indices: Sequence[int] = (2, ),
        init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                  dict(type='Constant', val=1, layer='_BatchNorm'))
    ) -> None:
        super().__init__(init_cfg=list(init_cfg) if init_cfg else None)
        if not out_indices or not all(0 <= i < 3 for i in out_indices):
            raise ValueError(
                f'out_indices must lie in 0..2, got {out_indices}')
        self.stem = ConvModule(
            in_channels, STEM_CHANNELS, 1, bias=False,
            norm_cfg=dict(type='BN'))
        self.stages = nn.ModuleList()
        width = STEM_CHANNELS
        for index, (channels, units) in enumerate(
                zip(stage_channels, stage_units)):
            stage = []
            for i in range(units):
                first_unit = index == 0 and i == 0  # its input is the stem's
                stage.append(
                    ShuffleUnit(width, channels, 2 if i == 0 else 1, groups,
                                1 if first_unit else groups))
                width = channels
            self.stages.append(nn.Sequential(*stage))
        self.out_indices = tuple(out_indices)

    def forward(self, x: Tensor) -> tuple:
        return stage_outputs(self.stem(x), self.stages, self.out_indices)
