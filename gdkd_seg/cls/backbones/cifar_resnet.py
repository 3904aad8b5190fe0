"""The 3-stage CIFAR ResNets of the KD literature (resnet8 ... resnet110,
resnet8x4, resnet32x4), as CRD/mdistiller define them.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, sec.
4.2: a 3x3 stem, three stages of ``(depth - 2) / 6`` basic blocks at strides
1, 2, 2, no max-pool. The ``x4`` variants (Tian et al., CRD, ICLR 2020) widen
the stem to 32 and the stages to 64/128/256. mmpretrain's ``ResNet_CIFAR``
is the 4-stage ImageNet layout on 32x32 inputs, so these only add depths.
"""
from mmpretrain.models.backbones import ResNet_CIFAR
from mmpretrain.models.backbones.resnet import BasicBlock
from mmpretrain.registry import MODELS

#: depth -> (stem_channels, base_channels) of the named CIFAR ResNets; the
#: KD papers' ``resnet8x4`` / ``resnet32x4`` are depth 8 / 32 with (32, 64).
CIFAR_RESNET_DEPTHS = (8, 14, 20, 32, 44, 56, 110)


@MODELS.register_module()
class CifarResNet(ResNet_CIFAR):
    """CIFAR ResNet-(6n+2) with basic blocks, three stages.

    Example configs::

        resnet20 = dict(type='CifarResNet', depth=20)
        resnet8x4 = dict(type='CifarResNet', depth=8, stem_channels=32,
                         base_channels=64)

    Args:
        depth (int): One of 8, 14, 20, 32, 44, 56, 110.
        stem_channels (int): Stem width. Default 16.
        base_channels (int): Width of the first stage; the next two double
            it. Default 16.
        out_indices (Sequence[int]): Stages to return (0..2). Default (2,).
        zero_init_residual (bool): Zero the last BN of each block. Default
            False (the CIFAR KD recipes do not).
        **kwargs: other arguments of mmpretrain's ``ResNet``
            (``in_channels``, ``norm_cfg``, ``frozen_stages``, ...).
    """

    arch_settings = {
        depth: (BasicBlock, ((depth - 2) // 6, ) * 3)
        for depth in CIFAR_RESNET_DEPTHS
    }

    def __init__(self,
                 depth: int,
                 stem_channels: int = 16,
                 base_channels: int = 16,
                 out_indices=(2, ),
                 zero_init_residual: bool = False,
                 **kwargs) -> None:
        if depth not in self.arch_settings:
            raise KeyError(f'CifarResNet depth must be one of '
                           f'{CIFAR_RESNET_DEPTHS}, got {depth}')
        super().__init__(
            depth,
            stem_channels=stem_channels,
            base_channels=base_channels,
            num_stages=3,
            strides=(1, 2, 2),
            dilations=(1, 1, 1),
            out_indices=out_indices,
            zero_init_residual=zero_init_residual,
            **kwargs)
