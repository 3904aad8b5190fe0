"""Wide ResNets for CIFAR (wrn_16_2, wrn_40_2, ...), as CRD/mdistiller define
them.

Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016: a 3x3 stem of 16
channels, three stages of ``(depth - 4) / 6`` pre-activation blocks
(BN-ReLU-conv-BN-ReLU-conv, a 1x1 conv shortcut where the width changes) of
width 16k, 32k, 64k at strides 1, 2, 2, and a final BN-ReLU.
"""
from typing import Sequence

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 plus a shortcut.

    When the width changes, the shortcut is a 1x1 conv on the *activated*
    input (the pre-activation is shared by both paths).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 drop_rate: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.shortcut = None if in_channels == out_channels else nn.Conv2d(
            in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        act = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(act)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(act))


@MODELS.register_module()
class CifarWideResNet(BaseModule):
    """WRN-depth-k for 32x32 inputs.

    Example: ``dict(type='CifarWideResNet', depth=40, widen_factor=2)``.

    Args:
        depth (int): 6n+4, e.g. 16 or 40.
        widen_factor (int): k. Default 1.
        drop_rate (float): Dropout between the two convs. Default 0.
        in_channels (int): Input channels. Default 3.
        out_indices (Sequence[int]): Stages to return (0..2); the last stage
            is returned after the final BN-ReLU. Default (2,).
        init_cfg: see mmengine's BaseModule. Default: Kaiming-normal
            (fan_out) convs, BN weight 1 and bias 0, as the reference.
    """

    def __init__(
        self,
        depth: int,
        widen_factor: int = 1,
        drop_rate: float = 0.0,
        in_channels: int = 3,
        out_indices: Sequence[int] = (2, ),
        init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                  dict(type='Constant', val=1, layer='_BatchNorm'))
    ) -> None:
        super().__init__(init_cfg=list(init_cfg) if init_cfg else None)
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f'WRN depth must be 6n+4 (n >= 1), got {depth}')
        if not out_indices or not all(0 <= i < 3 for i in out_indices):
            raise ValueError(
                f'out_indices must lie in 0..2, got {out_indices}')
        blocks = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.stages = nn.ModuleList()
        for i, stride in enumerate((1, 2, 2)):
            stage = [PreActBlock(widths[i], widths[i + 1], stride, drop_rate)]
            stage += [
                PreActBlock(widths[i + 1], widths[i + 1], 1, drop_rate)
                for _ in range(blocks - 1)
            ]
            self.stages.append(nn.Sequential(*stage))
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.out_indices = tuple(out_indices)
        self.feat_dim = widths[3]

    def forward(self, x: Tensor) -> tuple:
        x = self.conv1(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == len(self.stages) - 1:
                x = F.relu(self.bn1(x))
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
