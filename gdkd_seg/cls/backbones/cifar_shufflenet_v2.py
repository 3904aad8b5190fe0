"""ShuffleNetV2 for CIFAR (``ShuffleV2``), as CRD/mdistiller define it.

Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN
Architecture Design", ECCV 2018, at width 1.0 (stages of 116, 232, 464
channels with 4, 8, 4 units, then a 1x1 conv to 1024), on 32x32 inputs: the
stem is a 1x1 conv to 24 channels at stride 1 with no max-pool, so the
three stages run at 16, 8 and 4 pixels. The units are mmpretrain's
``ShuffleNetV2`` units; only the stem differs.
"""
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmpretrain.models.backbones import ShuffleNetV2
from mmpretrain.registry import MODELS


@MODELS.register_module()
class CifarShuffleNetV2(ShuffleNetV2):
    """ShuffleNetV2 with the CIFAR stem of the KD literature.

    Example: ``dict(type='CifarShuffleNetV2')`` (the KD papers'
    ``ShuffleV2``: widen factor 1.0, 1024 output channels).

    Args:
        widen_factor (float): 0.5, 1.0, 1.5 or 2.0. Default 1.0.
        in_channels (int): Input channels. Default 3.
        **kwargs: other arguments of mmpretrain's ``ShuffleNetV2``
            (``out_indices`` (0..3, 3 is the final 1x1 conv; default (3,)),
            ``norm_cfg``, ``frozen_stages``, ...).
    """

    def __init__(self,
                 widen_factor: float = 1.0,
                 in_channels: int = 3,
                 **kwargs) -> None:
        super().__init__(widen_factor=widen_factor, **kwargs)
        self.conv1 = ConvModule(
            in_channels,
            self.conv1.conv.out_channels,
            kernel_size=1,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
        self.maxpool = nn.Identity()
